-- 0011 re-embedding after a text model switch (`hanseek models use NAME` / `hanseek models reembed`).
--
-- A job re-encodes every post's text with the target model into `reembed_staging`, one committed
-- batch at a time, so a killed run resumes where it stopped. `source_md5` is the hash of what the
-- encoder read (the post's text fields and the text configuration): a post edited after it was staged
-- no longer matches and is staged again. The service keeps using `posts.embedding` (the previous
-- model's vectors) until one transaction copies the staged vectors over, recomputes the user
-- profiles, makes the target the active model and deletes the job (its staging rows cascade).
-- At most one job is pending; starting one for another model drops the previous one.

CREATE TABLE reembed_jobs (
    model       text PRIMARY KEY REFERENCES models(name) ON DELETE CASCADE,
    dim         integer NOT NULL CHECK (dim > 0),
    from_model  text,                       -- the active model when the job started (for display)
    started_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE reembed_staging (
    model       text NOT NULL REFERENCES reembed_jobs(model) ON DELETE CASCADE,
    post_id     text NOT NULL REFERENCES posts(id) ON DELETE CASCADE,
    source_md5  text NOT NULL,
    embedding   vector NOT NULL,            -- the target model's dimension (checked against posts)
    PRIMARY KEY (model, post_id)
);
-- Deleting a post checks this foreign key: find its staging rows without a scan.
CREATE INDEX reembed_staging_post_idx ON reembed_staging (post_id);
