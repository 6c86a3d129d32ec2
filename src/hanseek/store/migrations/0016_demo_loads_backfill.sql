-- 0016 demo: record the demo loads of installs from before 0015. Their demo was loaded by a version
-- that kept no record, so the first start after the upgrade took "no record" for an unfinished load
-- and stored again every demo photo the user had deleted. A demo photo stored before 0015 was applied
-- means such an install (after 0015 every load is recorded as it finishes). The feed demo is recorded
-- where any of its events is stored: what its loader has taken for "loaded" all along, now kept when
-- the user deletes every demo post (which takes their events along).
INSERT INTO demo_loads (feature)
SELECT 'images'
WHERE EXISTS (
    SELECT 1 FROM images
    WHERE 'demo' = ANY (tags)
      AND created_at < (SELECT applied_at FROM schema_migrations WHERE version = 15)
)
ON CONFLICT DO NOTHING;

INSERT INTO demo_loads (feature)
SELECT 'feed'
WHERE EXISTS (SELECT 1 FROM events WHERE idempotency_key ~ '^demo-[0-9]+$')
ON CONFLICT DO NOTHING;
