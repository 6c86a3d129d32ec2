-- 0007 feed ranker: per-user affinities (kept incrementally by the events writer) and the registry
-- of trained re-rankers. The model files live under <data_dir>/feed/rankers/; this table is the
-- catalogue and says which one serves. Every process polls it, so activating a model swaps it in
-- without a restart.

CREATE TABLE user_affinity (
    user_id     text NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    dim         text NOT NULL CHECK (dim IN ('community', 'author', 'category')),
    key         text NOT NULL,
    weight      double precision NOT NULL,
    PRIMARY KEY (user_id, dim, key)
);

CREATE TABLE feed_rankers (
    name        text PRIMARY KEY CHECK (name ~ '^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$'),
    path        text NOT NULL,
    kind        text NOT NULL,                 -- hgb | logistic
    features    text[] NOT NULL,
    metrics     jsonb NOT NULL DEFAULT '{}'::jsonb,
    active      boolean NOT NULL DEFAULT false,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX feed_rankers_one_active_idx ON feed_rankers (active) WHERE active;

-- Backfill from events recorded before this migration (weights as stored with each event).
INSERT INTO user_affinity (user_id, dim, key, weight)
SELECT e.user_id, 'community', p.community, sum(e.weight) FROM events e JOIN posts p ON p.id = e.post_id
GROUP BY 1, 3;
INSERT INTO user_affinity (user_id, dim, key, weight)
SELECT e.user_id, 'author', p.author, sum(e.weight) FROM events e JOIN posts p ON p.id = e.post_id
WHERE p.author IS NOT NULL GROUP BY 1, 3;
INSERT INTO user_affinity (user_id, dim, key, weight)
SELECT e.user_id, 'category', p.category, sum(e.weight) FROM events e JOIN posts p ON p.id = e.post_id
WHERE p.category IS NOT NULL GROUP BY 1, 3;
