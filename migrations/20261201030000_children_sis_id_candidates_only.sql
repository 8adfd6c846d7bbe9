-- The SIS id of a child is, like its name key (20261130210000), only ever looked up for matching
-- candidates: archived children (carry-over) and children entered in the product without a
-- Clever id (linking), in src/sync/resolve.rs and the admin's match list; a current roster child is
-- found by its Clever id. Indexing it for every roster child cost a first sync an index entry per
-- child (19k at 100k students); the index now holds the candidates only, with the same predicate
-- as the name key's. A roster child enters it when it is archived.
DROP INDEX children_connection_sis_id;
CREATE INDEX children_candidates_sis_id ON children (connection, sis_id)
    WHERE sis_id IS NOT NULL AND (archived_school_year IS NOT NULL OR clever_id IS NULL);
