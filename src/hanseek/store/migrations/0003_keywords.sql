-- 0003 keywords: per-subject corpora and their term statistics, subject dictionaries, keyword floors.
-- Document frequencies are maintained incrementally (one transaction per add/remove), never rebuilt.

CREATE TABLE kw_subjects (
    id           bigserial PRIMARY KEY,
    name         text NOT NULL UNIQUE CHECK (length(btrim(name)) > 0),
    n_docs       integer NOT NULL DEFAULT 0 CHECK (n_docs >= 0),
    total_terms  bigint NOT NULL DEFAULT 0 CHECK (total_terms >= 0),  -- sum of document lengths in terms
    floor        real CHECK (floor IS NULL OR (floor >= 0 AND floor <= 1)),  -- minimum weight of keywords
    extractor_version integer NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE kw_documents (
    id           bigserial PRIMARY KEY,
    subject_id   bigint NOT NULL REFERENCES kw_subjects(id) ON DELETE CASCADE,
    title        text,
    source       text,
    body         text NOT NULL,
    sha256       bytea NOT NULL,
    n_terms      integer NOT NULL CHECK (n_terms >= 0),
    created_at   timestamptz NOT NULL DEFAULT now(),
    UNIQUE (subject_id, sha256)
);

-- Term counts per document: what a removal must subtract.
CREATE TABLE kw_doc_terms (
    doc_id  bigint NOT NULL REFERENCES kw_documents(id) ON DELETE CASCADE,
    term    text NOT NULL,
    tf      integer NOT NULL CHECK (tf > 0),
    PRIMARY KEY (doc_id, term)
);

CREATE TABLE kw_term_df (
    subject_id  bigint NOT NULL REFERENCES kw_subjects(id) ON DELETE CASCADE,
    term        text NOT NULL,
    df          integer NOT NULL CHECK (df > 0),
    PRIMARY KEY (subject_id, term)
);

-- Subject dictionary: word -> weight (e.g. from a teacher's CSV).
CREATE TABLE kw_dictionary (
    subject_id  bigint NOT NULL REFERENCES kw_subjects(id) ON DELETE CASCADE,
    term        text NOT NULL,
    weight      real NOT NULL CHECK (weight >= 0),
    PRIMARY KEY (subject_id, term)
);

-- Subject keyword list: listed words never weigh less than the subject's floor.
CREATE TABLE kw_keywords (
    subject_id  bigint NOT NULL REFERENCES kw_subjects(id) ON DELETE CASCADE,
    term        text NOT NULL,
    PRIMARY KEY (subject_id, term)
);
