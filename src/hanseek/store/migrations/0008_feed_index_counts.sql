-- 0008 feed: the in-process index also keeps each post's stored likes + comments (the "popular"
-- candidate source of the ranked feed), so a change of those counts must reach the followers too.
CREATE OR REPLACE FUNCTION posts_mark_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.embedding IS DISTINCT FROM OLD.embedding
       OR NEW.community IS DISTINCT FROM OLD.community
       OR NEW.created_at IS DISTINCT FROM OLD.created_at
       OR NEW.likes IS DISTINCT FROM OLD.likes
       OR NEW.comments IS DISTINCT FROM OLD.comments THEN
        NEW.change_xid := pg_current_xact_id();
    END IF;
    RETURN NEW;
END $$;
