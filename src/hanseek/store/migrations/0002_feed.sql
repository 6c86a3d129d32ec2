-- 0002 feed: communities, posts with their vectors, users, memberships, events, user profiles.
--
-- PostgreSQL is the source of truth. Processes that serve the feed from an in-process matrix follow
-- the posts table through `change_xid` (the writing transaction's id) and `post_deletions`, and are
-- woken by NOTIFY on the channel `hanseek_posts`; see hanseek/feed/index.py for why a transaction id
-- (and not a sequence number) is what makes "nothing committed is ever missed" hold.

CREATE TABLE communities (
    id          text PRIMARY KEY CHECK (length(id) BETWEEN 1 AND 200),
    name        text,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE posts (
    id          text PRIMARY KEY CHECK (length(id) BETWEEN 1 AND 200),
    -- Compact internal key: the in-process index stores it instead of the text id.
    rid         bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
    community   text NOT NULL REFERENCES communities(id),
    author      text,
    title       text NOT NULL DEFAULT '',
    body        text NOT NULL DEFAULT '',
    category    text,
    created_at  timestamptz NOT NULL,
    likes       integer NOT NULL DEFAULT 0 CHECK (likes >= 0),
    comments    integer NOT NULL DEFAULT 0 CHECK (comments >= 0),
    embedding   vector(384) NOT NULL,
    change_xid  xid8 NOT NULL DEFAULT pg_current_xact_id(),
    ingested_at timestamptz NOT NULL DEFAULT now()
);

-- The feed's filter: a user's communities and a date window -> a contiguous range per community.
CREATE INDEX posts_community_created_idx ON posts (community, created_at);
CREATE INDEX posts_embedding_hnsw_idx ON posts USING hnsw (embedding vector_cosine_ops);
CREATE INDEX posts_change_xid_idx ON posts (change_xid);

-- Only changes that move a post in the index (vector, community, time) mark it changed.
CREATE FUNCTION posts_mark_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.embedding IS DISTINCT FROM OLD.embedding
       OR NEW.community IS DISTINCT FROM OLD.community
       OR NEW.created_at IS DISTINCT FROM OLD.created_at THEN
        NEW.change_xid := pg_current_xact_id();
    END IF;
    RETURN NEW;
END $$;

CREATE TRIGGER posts_mark_changed BEFORE UPDATE ON posts
    FOR EACH ROW EXECUTE FUNCTION posts_mark_changed();

CREATE TABLE post_deletions (
    rid         bigint NOT NULL,
    id          text NOT NULL,
    change_xid  xid8 NOT NULL DEFAULT pg_current_xact_id(),
    deleted_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX post_deletions_change_xid_idx ON post_deletions (change_xid);

CREATE FUNCTION posts_record_deletion() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO post_deletions (rid, id) SELECT rid, id FROM deleted_rows;
    RETURN NULL;
END $$;

CREATE TRIGGER posts_record_deletion AFTER DELETE ON posts
    REFERENCING OLD TABLE AS deleted_rows FOR EACH STATEMENT EXECUTE FUNCTION posts_record_deletion();

-- One notification per writing statement (delivered at commit; duplicates collapse).
CREATE FUNCTION posts_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('hanseek_posts', '');
    RETURN NULL;
END $$;

CREATE TRIGGER posts_notify AFTER INSERT OR UPDATE OR DELETE ON posts
    FOR EACH STATEMENT EXECUTE FUNCTION posts_notify();

-- Interaction counts from events, kept apart from `posts` so a like never rewrites a 1.5 kB row or
-- its HNSW entry. `trend_*` are exponentially decayed counts (half-lives 1 and 7 days) at `trend_at`.
CREATE TABLE post_stats (
    post_id     text PRIMARY KEY REFERENCES posts(id) ON DELETE CASCADE,
    reads       integer NOT NULL DEFAULT 0,
    likes       integer NOT NULL DEFAULT 0,
    comments    integer NOT NULL DEFAULT 0,
    trend_1d    double precision NOT NULL DEFAULT 0,
    trend_7d    double precision NOT NULL DEFAULT 0,
    trend_at    timestamptz
);

CREATE TABLE users (
    id          text PRIMARY KEY CHECK (length(id) BETWEEN 1 AND 200),
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE memberships (
    user_id     text NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    community   text NOT NULL REFERENCES communities(id) ON DELETE CASCADE,
    joined_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, community)
);

CREATE TABLE events (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id         text NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    post_id         text NOT NULL REFERENCES posts(id) ON DELETE CASCADE,
    kind            text NOT NULL CHECK (kind IN ('read', 'like', 'comment')),
    at              timestamptz NOT NULL,
    -- The weight used when the event was folded into the profile, so later configuration changes
    -- cannot make the stored profile disagree with its own history.
    weight          real NOT NULL CHECK (weight >= 0),
    -- A retried batch carries the same keys and is not counted twice.
    idempotency_key text NOT NULL UNIQUE,
    recorded_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX events_user_at_idx ON events (user_id, at);
CREATE INDEX events_post_idx ON events (post_id);

-- The user's vector as a running weighted sum: vector = vec_sum / weight (direction only matters
-- for cosine). With time decay both are scaled to ref_time (see hanseek/feed/profile.py).
CREATE TABLE user_profiles (
    user_id     text PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
    vec_sum     vector(384) NOT NULL,
    weight      double precision NOT NULL,
    ref_time    timestamptz NOT NULL,
    n_events    integer NOT NULL,
    half_life_days double precision NOT NULL DEFAULT 0,
    updated_at  timestamptz NOT NULL DEFAULT now()
);
