-- 0001 core (store): what every feature relies on; nothing feature-specific lives here.
-- pgvector: `vector(d)` / `halfvec(d)` columns, cosine distance `<=>`, HNSW indexes.
-- Database.open() creates it before the pool registers the types; repeated here so a restored or
-- hand-made database gets it from the migrations alone.
CREATE EXTENSION IF NOT EXISTS vector;
