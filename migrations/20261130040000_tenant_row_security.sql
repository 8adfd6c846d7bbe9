-- A database role per district (RosterConnection): row-level security limits each district's login
-- role to its own connection's rows in every roster table and in the sync history, so a district's
-- credential cannot read or change another district's children. The controller (the tables' owner,
-- which row-level security does not restrict) creates the roles and maps each to its connection
-- here; see docs/security.md and src/store/tenancy.rs.

-- Which connection each district role may see. Only the owner reads or writes it: a district role
-- has no privilege on it and reaches it only through rs_tenant_connection() below.
CREATE TABLE rs_tenants (
    role_name   text        PRIMARY KEY,
    connection  text        NOT NULL UNIQUE,
    -- A short hash of the role's current password; the controller writes the same value on the
    -- district's Secret, so a Secret left behind by an interrupted rotation is noticed and fixed.
    fingerprint text        NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    rotated_at  timestamptz NOT NULL DEFAULT now()
);

-- The connection of the session's login role (NULL for any role that is not a district role). Keyed on session_user,
-- which a client cannot change (SET ROLE changes current_user only; SET SESSION AUTHORIZATION needs
-- a superuser), never on anything a client can set (a GUC, an application_name). SECURITY DEFINER
-- so that a district role can call it without reading rs_tenants; the search path is pinned to this
-- schema with pg_temp last, so a temporary table cannot stand in for rs_tenants.
DO $$
BEGIN
    EXECUTE format(
        'CREATE FUNCTION rs_tenant_connection() RETURNS text '
        'LANGUAGE sql STABLE SECURITY DEFINER SET search_path = %I, pg_temp AS '
        '$f$ SELECT connection FROM rs_tenants WHERE role_name = session_user $f$',
        current_schema());
END
$$;

-- A district role sees and writes only its connection's rows. Any other role (the product's reader,
-- an administrator) is limited by its grants alone, as before. The function is wrapped in a scalar
-- subquery so that it runs once per statement (an InitPlan), not once per row.
DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['schools', 'classrooms', 'educators', 'children', 'enrollments', 'sync_runs']
    LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format(
            'CREATE POLICY own_connection ON %I '
            'USING ((SELECT rs_tenant_connection()) IS NULL OR connection = (SELECT rs_tenant_connection())) '
            'WITH CHECK ((SELECT rs_tenant_connection()) IS NULL OR connection = (SELECT rs_tenant_connection()))',
            t);
    END LOOP;
END
$$;

-- A problem belongs to a run; the run's own policy decides (the subquery is filtered by it).
ALTER TABLE sync_problems ENABLE ROW LEVEL SECURITY;
CREATE POLICY own_connection ON sync_problems
    USING (EXISTS (SELECT 1 FROM sync_runs r WHERE r.run_id = sync_problems.run_id))
    WITH CHECK (EXISTS (SELECT 1 FROM sync_runs r WHERE r.run_id = sync_problems.run_id));
