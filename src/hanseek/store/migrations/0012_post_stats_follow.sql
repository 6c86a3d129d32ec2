-- 0012 feed: each serving process keeps a copy of post_stats in memory (hanseek/feed/poststats.py)
-- and follows it like the posts table: by the writing transaction's id and a NOTIFY on the same
-- channel (see hanseek/feed/indexsync.py for why a transaction id and not a sequence or a time).
ALTER TABLE post_stats ADD COLUMN change_xid xid8 NOT NULL DEFAULT pg_current_xact_id();
CREATE INDEX post_stats_change_xid_idx ON post_stats (change_xid);

CREATE FUNCTION post_stats_mark_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.change_xid := pg_current_xact_id();
    RETURN NEW;
END $$;

CREATE TRIGGER post_stats_mark_changed BEFORE UPDATE ON post_stats
    FOR EACH ROW EXECUTE FUNCTION post_stats_mark_changed();

-- Inserts carry no counts yet (the events writer inserts empty rows, then updates them).
CREATE TRIGGER post_stats_notify AFTER UPDATE ON post_stats
    FOR EACH STATEMENT EXECUTE FUNCTION posts_notify();
