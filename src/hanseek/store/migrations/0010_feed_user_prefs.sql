-- 0010 feed: what each user's reads say about how new and how popular the posts they pick are
-- (re-ranker features "preferences"). Running sums over read events, kept incrementally by the
-- events writer: age in hours and likes + comments shown on the post at the moment of the read.
CREATE TABLE feed_user_prefs (
    user_id      text PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
    reads        bigint NOT NULL DEFAULT 0,
    sum_log_age  double precision NOT NULL DEFAULT 0,  -- Σ ln(1 + age_h)
    sum_age_h    double precision NOT NULL DEFAULT 0,
    sum_log_pop  double precision NOT NULL DEFAULT 0   -- Σ ln(1 + likes + comments)
);

-- Backfill from reads recorded before this migration. The counts a post showed at the time of an
-- old read are not kept, so its stored likes + comments stand in for them.
INSERT INTO feed_user_prefs (user_id, reads, sum_log_age, sum_age_h, sum_log_pop)
SELECT e.user_id, count(*),
       sum(ln(1 + greatest(extract(epoch FROM e.at - p.created_at), 0) / 3600.0)),
       sum(greatest(extract(epoch FROM e.at - p.created_at), 0) / 3600.0),
       sum(ln(1 + greatest(p.likes + p.comments, 0)))
FROM events e JOIN posts p ON p.id = e.post_id
WHERE e.kind = 'read'
GROUP BY e.user_id;
