-- 0017 re-embedding jobs get an id, and a model records the job whose swap last made it active.
-- A run that finds its job gone can then tell "another run of the same re-embedding (or a later one
-- to the same model) swapped meanwhile" from "another command dropped it", also when the model was
-- already active before it began (a redo), where "job gone, model active" alone proves nothing.
ALTER TABLE reembed_jobs ADD COLUMN id bigint GENERATED ALWAYS AS IDENTITY;
ALTER TABLE models ADD COLUMN reembed_job bigint;
