-- A sync refreshes the statistics of the roster tables a first sync grew (src/sync/engine.rs,
-- refresh_statistics), so that the next run's per-connection statements are planned from figures
-- that include the new district. Only a table's owner may ANALYZE it: a district role (the
-- default, dedicated tenancy) got "WARNING: skipping ..." and nothing was refreshed. This function
-- runs that ANALYZE with the owner's rights, for the roster tables only, on the columns the sync
-- names (quoted; an unknown column is an error). EXECUTE is revoked from PUBLIC; the district group
-- role is granted it by the controller (src/store/tenancy.rs, prepare). The statistics are shared
-- by every district, so the caller's session settings do not shape them: the sample size and the
-- cost delay are fixed (Postgres' defaults for a manual ANALYZE), and a table whose statistics lock
-- another run holds is skipped (SKIP_LOCKED) rather than waited for.
DO $$
BEGIN
    EXECUTE format($f$
        CREATE FUNCTION rs_analyze_roster_table(tbl text, cols text[]) RETURNS void
        LANGUAGE plpgsql SECURITY DEFINER SET search_path = %I, pg_temp
        SET default_statistics_target = 100 SET vacuum_cost_delay = 0 AS $body$
        BEGIN
            IF tbl NOT IN ('schools', 'classrooms', 'educators', 'children', 'enrollments') THEN
                RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
                    MESSAGE = format('rs_analyze_roster_table: %%s is not a roster table', tbl);
            END IF;
            IF coalesce(cardinality(cols), 0) = 0 THEN
                EXECUTE format('ANALYZE (SKIP_LOCKED) %%I', tbl);
            ELSE
                EXECUTE format('ANALYZE (SKIP_LOCKED) %%I (%%s)', tbl,
                    (SELECT string_agg(quote_ident(c), ', ') FROM unnest(cols) AS c));
            END IF;
        END $body$;$f$, current_schema());
END
$$;
REVOKE EXECUTE ON FUNCTION rs_analyze_roster_table(text, text[]) FROM PUBLIC;
