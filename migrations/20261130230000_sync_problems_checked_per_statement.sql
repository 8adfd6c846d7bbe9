-- A run's problems are written once, thousands at a time (4.7k at 100k students), and their
-- checks ran once per row: the foreign key to sync_runs (a lookup and a key-share lock per row),
-- the row-level security check (an EXISTS on sync_runs per row for a district role), a sequence
-- value and two index entries. Measured on 4.7k rows: 70-85 ms as the owner and more for a
-- district role, against 17 ms for the rows and their key alone. Now:
-- - a problem carries its run's connection, so a district role is checked the way every other
--   roster table checks it (one comparison per row, the tenant function evaluated once);
-- - its key is (run_id, seq), seq its place in the run's list: no sequence, one index;
-- - the reference to its run is checked once per statement (the triggers below): every added
--   problem's run exists with the same connection, and those runs are locked against deletion
--   until the transaction ends, which is what the foreign key did row by row. Deleting runs
--   deletes their problems (was ON DELETE CASCADE), truncating them truncates the problems, and a
--   run's id and connection never change.

ALTER TABLE sync_problems ADD COLUMN connection text, ADD COLUMN seq integer;
UPDATE sync_problems p SET connection = r.connection FROM sync_runs r WHERE r.run_id = p.run_id;
UPDATE sync_problems p SET seq = n.seq
FROM (SELECT id, row_number() OVER (PARTITION BY run_id ORDER BY id)::integer AS seq FROM sync_problems) n
WHERE n.id = p.id;
ALTER TABLE sync_problems ALTER COLUMN connection SET NOT NULL, ALTER COLUMN seq SET NOT NULL;
ALTER TABLE sync_problems DROP CONSTRAINT sync_problems_run_id_fkey;
ALTER TABLE sync_problems DROP CONSTRAINT sync_problems_pkey;
ALTER TABLE sync_problems DROP COLUMN id;
DROP INDEX sync_problems_run;
ALTER TABLE sync_problems ADD PRIMARY KEY (run_id, seq);

DROP POLICY own_connection ON sync_problems;
CREATE POLICY own_connection ON sync_problems
    USING ((SELECT rs_tenant_connection()) IS NULL OR connection = (SELECT rs_tenant_connection()))
    WITH CHECK ((SELECT rs_tenant_connection()) IS NULL OR connection = (SELECT rs_tenant_connection()));

-- The functions run with the caller's rights (a district role sees only its own runs, so a
-- problem can only be added to one of them) and a search path pinned to this schema with pg_temp
-- last, so that a temporary table cannot stand in for sync_runs.
DO $$
BEGIN
    EXECUTE format($f$
        CREATE FUNCTION rs_sync_problems_have_run() RETURNS trigger
        LANGUAGE plpgsql SET search_path = %I, pg_temp AS $body$
        BEGIN
            PERFORM 1 FROM sync_runs r
            WHERE r.run_id IN (SELECT DISTINCT run_id FROM added_problems)
            FOR KEY SHARE;
            IF EXISTS (SELECT 1 FROM added_problems a WHERE NOT EXISTS (
                    SELECT 1 FROM sync_runs r WHERE r.run_id = a.run_id AND r.connection = a.connection)) THEN
                RAISE EXCEPTION USING ERRCODE = 'foreign_key_violation',
                    MESSAGE = 'sync_problems: a problem must belong to an existing run of the same connection';
            END IF;
            RETURN NULL;
        END $body$;$f$, current_schema());
    EXECUTE format($f$
        CREATE FUNCTION rs_sync_runs_delete_problems() RETURNS trigger
        LANGUAGE plpgsql SET search_path = %I, pg_temp AS $body$
        BEGIN
            DELETE FROM sync_problems p USING deleted_runs d WHERE p.run_id = d.run_id;
            RETURN NULL;
        END $body$;$f$, current_schema());
    EXECUTE format($f$
        CREATE FUNCTION rs_sync_runs_truncate_problems() RETURNS trigger
        LANGUAGE plpgsql SET search_path = %I, pg_temp AS $body$
        BEGIN
            TRUNCATE sync_problems;
            RETURN NULL;
        END $body$;$f$, current_schema());
    EXECUTE format($f$
        CREATE FUNCTION rs_sync_runs_keep_identity() RETURNS trigger
        LANGUAGE plpgsql SET search_path = %I, pg_temp AS $body$
        BEGIN
            RAISE EXCEPTION USING ERRCODE = 'foreign_key_violation',
                MESSAGE = 'sync_runs: a run''s id and connection never change';
        END $body$;$f$, current_schema());
END
$$;

CREATE TRIGGER sync_problems_have_run AFTER INSERT ON sync_problems
    REFERENCING NEW TABLE AS added_problems
    FOR EACH STATEMENT EXECUTE FUNCTION rs_sync_problems_have_run();
CREATE TRIGGER sync_problems_have_run_on_update AFTER UPDATE ON sync_problems
    REFERENCING NEW TABLE AS added_problems
    FOR EACH STATEMENT EXECUTE FUNCTION rs_sync_problems_have_run();
CREATE TRIGGER sync_runs_delete_problems AFTER DELETE ON sync_runs
    REFERENCING OLD TABLE AS deleted_runs
    FOR EACH STATEMENT EXECUTE FUNCTION rs_sync_runs_delete_problems();
CREATE TRIGGER sync_runs_truncate_problems AFTER TRUNCATE ON sync_runs
    FOR EACH STATEMENT EXECUTE FUNCTION rs_sync_runs_truncate_problems();
CREATE TRIGGER sync_runs_keep_identity BEFORE UPDATE OF run_id, connection ON sync_runs
    FOR EACH ROW WHEN (OLD.run_id IS DISTINCT FROM NEW.run_id OR OLD.connection IS DISTINCT FROM NEW.connection)
    EXECUTE FUNCTION rs_sync_runs_keep_identity();
