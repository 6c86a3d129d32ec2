-- 0005 images: the image collection and its vector spaces.
--
-- One row per distinct file (sha256). The file itself lives under Settings.media_dir, named by its
-- hash, never by a client-supplied name. Vectors live in one table per vector space
-- (`image_vec_<id>`, created by the image service when a space is first used), because pgvector's
-- HNSW index needs a fixed dimension and each encoder has its own: e.g. `image:efficientnet-lite0`
-- (1280-d), `caption:e5-small` and `labels:e5-small` (384-d, caption/tag and auto-label texts).
CREATE TABLE images (
    id           bigserial PRIMARY KEY,
    sha256       text        NOT NULL UNIQUE CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    format       text        NOT NULL,            -- Pillow format name: JPEG, PNG, WEBP, GIF, BMP, TIFF
    mime         text        NOT NULL,
    ext          text        NOT NULL CHECK (ext ~ '^[a-z0-9]{1,5}$'),
    bytes        bigint      NOT NULL CHECK (bytes > 0),
    width        integer     NOT NULL CHECK (width > 0),
    height       integer     NOT NULL CHECK (height > 0),
    source_name  text,                            -- the uploaded file name, for display only
    caption      text,
    tags         text[]      NOT NULL DEFAULT '{}',
    auto_labels  jsonb       NOT NULL DEFAULT '[]', -- [[label, probability], ...] from the image model
    created_at   timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX images_tags_idx ON images USING gin (tags);
CREATE INDEX images_created_at_idx ON images (created_at, id);

CREATE TABLE image_spaces (
    id          serial PRIMARY KEY,
    name        text        NOT NULL UNIQUE,      -- "<kind>:<model>", e.g. "image:efficientnet-lite0"
    kind        text        NOT NULL CHECK (kind IN ('image', 'caption', 'labels')),
    model       text        NOT NULL,
    dim         integer     NOT NULL CHECK (dim BETWEEN 1 AND 2000),  -- HNSW's limit for vector
    created_at  timestamptz NOT NULL DEFAULT now()
);
