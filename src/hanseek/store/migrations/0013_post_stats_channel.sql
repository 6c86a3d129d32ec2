-- 0013 feed: post_stats changes NOTIFY a channel of their own. On the shared `hanseek_posts` channel
-- every events batch woke every serving process into a sync at once; measured with bench.load
-- (2 workers, 70 req/s, 20% events) that cost ~1.2 ms of PostgreSQL CPU per request. Followers now
-- sync for post_stats at most every `stats_sync_seconds` (hanseek/feed/indexsync.py).
CREATE FUNCTION post_stats_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('hanseek_post_stats', '');
    RETURN NULL;
END $$;

DROP TRIGGER post_stats_notify ON post_stats;
CREATE TRIGGER post_stats_notify AFTER UPDATE ON post_stats
    FOR EACH STATEMENT EXECUTE FUNCTION post_stats_notify();
