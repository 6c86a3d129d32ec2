-- 0006 model registry (encoders): text encoders the service can use, with their model cards.
-- The files live under the data dir (models/NAME); this table is the catalogue and records which
-- model is active. `hanseek models use NAME` also writes models/active.json so that processes
-- without a database connection (CLI encode, workers) resolve the same model.

CREATE TABLE models (
    name        text PRIMARY KEY CHECK (name ~ '^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$'),
    kind        text NOT NULL,          -- bundled | simcse | supervised-simcse | imported
    path        text NOT NULL,
    base_model  text,
    dim         integer NOT NULL CHECK (dim > 0),
    card        jsonb NOT NULL DEFAULT '{}'::jsonb,
    active      boolean NOT NULL DEFAULT false,
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- At most one active model.
CREATE UNIQUE INDEX models_one_active_idx ON models (active) WHERE active;
