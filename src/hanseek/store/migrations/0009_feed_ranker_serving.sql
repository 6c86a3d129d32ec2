-- 0009 feed: what lets the ranked feed score its ~200 candidates without reading their wide rows.
-- post_stats gets the post's rid (the in-process index's key); the index also keeps author and
-- category (as hashtext codes), so their changes must reach the followers too.
ALTER TABLE post_stats ADD COLUMN rid bigint;
UPDATE post_stats s SET rid = p.rid FROM posts p WHERE p.id = s.post_id;
CREATE UNIQUE INDEX post_stats_rid_idx ON post_stats (rid);

CREATE OR REPLACE FUNCTION posts_mark_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.embedding IS DISTINCT FROM OLD.embedding
       OR NEW.community IS DISTINCT FROM OLD.community
       OR NEW.created_at IS DISTINCT FROM OLD.created_at
       OR NEW.likes IS DISTINCT FROM OLD.likes
       OR NEW.comments IS DISTINCT FROM OLD.comments
       OR NEW.author IS DISTINCT FROM OLD.author
       OR NEW.category IS DISTINCT FROM OLD.category THEN
        NEW.change_xid := pg_current_xact_id();
    END IF;
    RETURN NEW;
END $$;
