-- 0015 demo: which feature's bundled demo data finished loading. `serve` loads the demo when it is
-- missing; without a record of a finished load, a demo photo the user deleted was stored again on
-- the next start (under a new id).
CREATE TABLE demo_loads (
    feature      text PRIMARY KEY,
    completed_at timestamptz NOT NULL DEFAULT now()
);
