-- An enrollment's classroom is checked once per statement instead of once per row. A first sync
-- enrolls every child in one statement (19k rows at 100k students), and the foreign key from
-- (connection, classroom_clever_id) to classrooms ran a lookup and a key-share lock per row:
-- 150-300 ms of that statement, measured, against 10-20 ms for the same check over the whole
-- statement. Now the triggers below do what the foreign key did:
-- - every enrollment a statement adds, or whose classroom (or child) an update changes, names an
--   existing classroom of its connection, and those classrooms are locked against deletion until
--   the transaction ends (an update of other columns is not checked and locks nothing, as with
--   the foreign key);
-- - deleting classrooms deletes their enrollments (was ON DELETE CASCADE);
-- - truncating classrooms is refused while enrollments remain (truncate both together;
--   `TRUNCATE classrooms CASCADE` no longer reaches enrollments, and is refused too), as the
--   foreign key refused it, and outside READ COMMITTED;
-- - a classroom's connection and Clever id never change (nothing changes them; the foreign key
--   refused it only for a classroom with enrollments).
-- The functions run with the owner's rights, as a foreign key's checks do: whoever may write
-- enrollments needs no privilege on classrooms. Since the key includes the connection, and row
-- security keeps a district role's enrollments in its own connection, a district role can only
-- name its own classrooms. Their search path is pinned to this schema with pg_temp last, so that
-- a temporary table cannot stand in for classrooms or enrollments.
-- The reference from an enrollment to its child stays a foreign key: the product deletes children
-- (a merge of duplicates), at any isolation level.
-- Limit: classrooms are deleted and truncated under READ COMMITTED (as rostersync does). At
-- REPEATABLE READ or SERIALIZABLE the cascade's (or the check's) snapshot could miss enrollments
-- committed meanwhile, so the delete or truncate is refused there with a serialization failure
-- (40001) instead.

ALTER TABLE enrollments DROP CONSTRAINT enrollments_connection_classroom_clever_id_fkey;

DO $$
BEGIN
    EXECUTE format($f$
        CREATE FUNCTION rs_enrollments_have_classroom() RETURNS trigger
        LANGUAGE plpgsql SECURITY DEFINER SET search_path = %I, pg_temp AS $body$
        DECLARE
            wanted bigint;
            held bigint;
        BEGIN
            IF TG_OP = 'INSERT' THEN
                SELECT count(*) INTO wanted
                FROM (SELECT DISTINCT connection, classroom_clever_id FROM added_enrollments) k;
                PERFORM 1 FROM classrooms c
                WHERE (c.connection, c.clever_id) IN (SELECT connection, classroom_clever_id FROM added_enrollments)
                FOR KEY SHARE;
            ELSE
                -- As a foreign key does, an update checks (and locks the classroom of) only the
                -- rows whose reference changed: an update of other columns (a deactivation) takes
                -- no lock on classrooms, so it cannot deadlock with a classroom's deletion.
                SELECT count(*) INTO wanted
                FROM (SELECT DISTINCT n.connection, n.classroom_clever_id
                      FROM added_enrollments n LEFT JOIN old_enrollments o ON o.child_id = n.child_id
                      WHERE o.child_id IS NULL
                         OR (o.connection, o.classroom_clever_id) IS DISTINCT FROM (n.connection, n.classroom_clever_id)) k;
                PERFORM 1 FROM classrooms c
                WHERE (c.connection, c.clever_id) IN (
                    SELECT n.connection, n.classroom_clever_id
                    FROM added_enrollments n LEFT JOIN old_enrollments o ON o.child_id = n.child_id
                    WHERE o.child_id IS NULL
                       OR (o.connection, o.classroom_clever_id) IS DISTINCT FROM (n.connection, n.classroom_clever_id))
                FOR KEY SHARE;
            END IF;
            GET DIAGNOSTICS held = ROW_COUNT;
            IF held < wanted THEN
                RAISE EXCEPTION USING ERRCODE = 'foreign_key_violation',
                    MESSAGE = 'enrollments: an enrollment must name an existing classroom of its connection';
            END IF;
            RETURN NULL;
        END $body$;$f$, current_schema());
    EXECUTE format($f$
        CREATE FUNCTION rs_classrooms_delete_enrollments() RETURNS trigger
        LANGUAGE plpgsql SECURITY DEFINER SET search_path = %I, pg_temp AS $body$
        BEGIN
            IF current_setting('transaction_isolation') <> 'read committed'
               AND EXISTS (SELECT 1 FROM deleted_classrooms) THEN
                RAISE EXCEPTION USING ERRCODE = 'serialization_failure',
                    MESSAGE = 'classrooms: delete classrooms under READ COMMITTED (their enrollments are deleted with them)';
            END IF;
            DELETE FROM enrollments e USING deleted_classrooms d
            WHERE e.connection = d.connection AND e.classroom_clever_id = d.clever_id;
            RETURN NULL;
        END $body$;$f$, current_schema());
    EXECUTE format($f$
        CREATE FUNCTION rs_classrooms_truncate_check() RETURNS trigger
        LANGUAGE plpgsql SECURITY DEFINER SET search_path = %I, pg_temp AS $body$
        BEGIN
            -- Outside READ COMMITTED the check's snapshot could miss enrollments committed meanwhile.
            IF current_setting('transaction_isolation') <> 'read committed' THEN
                RAISE EXCEPTION USING ERRCODE = 'serialization_failure',
                    MESSAGE = 'classrooms: truncate classrooms under READ COMMITTED (enrollments name them)';
            END IF;
            IF EXISTS (SELECT 1 FROM enrollments) THEN
                RAISE EXCEPTION USING ERRCODE = 'feature_not_supported',
                    MESSAGE = 'classrooms: enrollments name these classrooms; truncate enrollments with them';
            END IF;
            RETURN NULL;
        END $body$;$f$, current_schema());
    EXECUTE format($f$
        CREATE FUNCTION rs_classrooms_keep_identity() RETURNS trigger
        LANGUAGE plpgsql SET search_path = %I, pg_temp AS $body$
        BEGIN
            RAISE EXCEPTION USING ERRCODE = 'foreign_key_violation',
                MESSAGE = 'classrooms: a classroom''s connection and Clever id never change';
        END $body$;$f$, current_schema());
END
$$;
REVOKE EXECUTE ON FUNCTION rs_enrollments_have_classroom() FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION rs_classrooms_delete_enrollments() FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION rs_classrooms_truncate_check() FROM PUBLIC;

CREATE TRIGGER enrollments_have_classroom AFTER INSERT ON enrollments
    REFERENCING NEW TABLE AS added_enrollments
    FOR EACH STATEMENT EXECUTE FUNCTION rs_enrollments_have_classroom();
CREATE TRIGGER enrollments_have_classroom_on_update AFTER UPDATE ON enrollments
    REFERENCING OLD TABLE AS old_enrollments NEW TABLE AS added_enrollments
    FOR EACH STATEMENT EXECUTE FUNCTION rs_enrollments_have_classroom();
CREATE TRIGGER classrooms_delete_enrollments AFTER DELETE ON classrooms
    REFERENCING OLD TABLE AS deleted_classrooms
    FOR EACH STATEMENT EXECUTE FUNCTION rs_classrooms_delete_enrollments();
CREATE TRIGGER classrooms_truncate_check AFTER TRUNCATE ON classrooms
    FOR EACH STATEMENT EXECUTE FUNCTION rs_classrooms_truncate_check();
CREATE TRIGGER classrooms_keep_identity BEFORE UPDATE OF connection, clever_id ON classrooms
    FOR EACH ROW WHEN (OLD.connection IS DISTINCT FROM NEW.connection OR OLD.clever_id IS DISTINCT FROM NEW.clever_id)
    EXECUTE FUNCTION rs_classrooms_keep_identity();
