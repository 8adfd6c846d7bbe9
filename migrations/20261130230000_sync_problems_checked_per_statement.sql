-- A run's problems are written once, thousands at a time (4.7k at 100k students), and their
-- checks ran once per row: the foreign key to sync_runs (a lookup and a key-share lock per row),
-- the row-level security check (an EXISTS on sync_runs per row for a district role) and two
-- index entries. Measured on 4.7k rows: 70-85 ms as the owner and more for a district role,
-- against 17-25 ms for the rows and one index. Now:
-- - a problem carries its run's connection, so a district role is checked the way every other
--   roster table checks it (one comparison per row, the tenant function evaluated once);
-- - one index, the key (run_id, id): a run's problems in recording order;
-- - the reference to its run is checked once per statement (the triggers below): every added
--   problem's run exists with the same connection, and those runs are locked against deletion
--   until the transaction ends, which is what the foreign key did row by row. Deleting runs
--   deletes their problems (was ON DELETE CASCADE), truncating them truncates the problems, and a
--   run's id and connection never change.
-- Additive for what came before: `id` keeps its sequence, and a problem written without its
-- connection (a sync Job of an earlier release still running during an upgrade, or a restore of
-- a dump taken before this migration) gets its run's connection from a BEFORE trigger whose
-- WHEN clause is false for this release's writes.
-- Limit: runs are deleted under READ COMMITTED (as rostersync does). At REPEATABLE READ or
-- SERIALIZABLE, the cascade's snapshot could miss problems committed meanwhile for a deleted run,
-- so the delete is refused there with a serialization failure (40001) instead.

ALTER TABLE sync_problems ADD COLUMN connection text;
UPDATE sync_problems p SET connection = r.connection FROM sync_runs r WHERE r.run_id = p.run_id;
ALTER TABLE sync_problems ALTER COLUMN connection SET NOT NULL;
ALTER TABLE sync_problems DROP CONSTRAINT sync_problems_run_id_fkey;
ALTER TABLE sync_problems DROP CONSTRAINT sync_problems_pkey;
DROP INDEX sync_problems_run;
ALTER TABLE sync_problems ADD PRIMARY KEY (run_id, id);

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
        CREATE FUNCTION rs_sync_problems_fill_connection() RETURNS trigger
        LANGUAGE plpgsql SET search_path = %I, pg_temp AS $body$
        BEGIN
            SELECT r.connection INTO NEW.connection FROM sync_runs r WHERE r.run_id = NEW.run_id;
            RETURN NEW;
        END $body$;$f$, current_schema());
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
            IF current_setting('transaction_isolation') <> 'read committed'
               AND EXISTS (SELECT 1 FROM deleted_runs) THEN
                RAISE EXCEPTION USING ERRCODE = 'serialization_failure',
                    MESSAGE = 'sync_runs: delete runs under READ COMMITTED (their problems are deleted with them)';
            END IF;
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

CREATE TRIGGER sync_problems_fill_connection BEFORE INSERT ON sync_problems
    FOR EACH ROW WHEN (NEW.connection IS NULL)
    EXECUTE FUNCTION rs_sync_problems_fill_connection();
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
