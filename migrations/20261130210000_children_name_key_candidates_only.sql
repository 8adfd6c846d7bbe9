-- The name key is only ever looked up for matching candidates (archived children, for carry-over;
-- children entered in the product without a Clever id, for linking: src/sync/resolve.rs and the
-- admin's match list). Indexing it for every roster child cost a first sync two regexp_replace
-- calls and an index entry per child (about a quarter of creating 19k children, measured); the
-- index now holds the candidates only. A roster child enters it when it is archived.
DROP INDEX children_connection_name_key;
CREATE INDEX children_candidates_name_key ON children (connection, rs_name_key(first_name, last_name))
    WHERE archived_school_year IS NOT NULL OR clever_id IS NULL;
