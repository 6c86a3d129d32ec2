-- 0014 feed: how much each user reads from each of their communities against how much each posted
-- when they read (re-ranker feature "exposure_lift"). Kept incrementally by the events writer: a
-- read adds 1 to the read post's community's reads, and to every community of the user its share
-- of the posts those communities published in the 30 days before the read (nothing when they
-- published none: there is no exposure to compare the read with).
CREATE TABLE feed_user_exposure (
    user_id   text NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    community text NOT NULL,
    reads     double precision NOT NULL DEFAULT 0,
    exposure  double precision NOT NULL DEFAULT 0,
    PRIMARY KEY (user_id, community)
);

-- Backfill from reads recorded before this migration, with today's memberships (earlier ones are
-- not kept) and the posts that still exist.
INSERT INTO feed_user_exposure (user_id, community, reads, exposure)
WITH r AS (
    SELECT e.id, e.user_id, e.at, p.community
    FROM events e JOIN posts p ON p.id = e.post_id
    WHERE e.kind = 'read'
), vol AS (
    SELECT r.id, m.community, c.n::float8 AS n
    FROM r JOIN memberships m ON m.user_id = r.user_id
    CROSS JOIN LATERAL (
        SELECT count(*) AS n FROM posts q WHERE q.community = m.community
            AND q.created_at >= r.at - interval '2592000 seconds' AND q.created_at <= r.at
    ) c
), shares AS (
    SELECT id, community, n / NULLIF(sum(n) OVER (PARTITION BY id), 0) AS s FROM vol
), exposed AS (
    SELECT r.user_id, x.community, sum(x.s) AS exposure
    FROM shares x JOIN r ON r.id = x.id WHERE x.s IS NOT NULL GROUP BY r.user_id, x.community
), counted AS (
    SELECT r.user_id, r.community, count(*)::float8 AS reads
    FROM r WHERE EXISTS (SELECT 1 FROM shares x WHERE x.id = r.id AND x.s IS NOT NULL)
    GROUP BY r.user_id, r.community
)
SELECT COALESCE(c.user_id, x.user_id), COALESCE(c.community, x.community),
       COALESCE(c.reads, 0), COALESCE(x.exposure, 0)
FROM counted c FULL JOIN exposed x ON x.user_id = c.user_id AND x.community = c.community;
