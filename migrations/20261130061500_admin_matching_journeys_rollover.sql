-- After the sync (issue 16): educators entered in the product before the connection can be matched
-- to roster teachers, admins link roster records to existing records by hand, children's journeys
-- change in bulk with a change log that can be reverted, school years are rolled over (archived)
-- once each, and the licensed products come from the operator, not from a district.

-- Educators get a surrogate id so that a product's own (manual) educators, without a Clever id,
-- can live beside the roster's and be linked to them. (connection, clever_id) stays unique for
-- roster educators (NULLs are distinct), so the sync's upsert keys are unchanged.
ALTER TABLE educators DROP CONSTRAINT educators_pkey;
ALTER TABLE educators ADD COLUMN id bigserial PRIMARY KEY;
ALTER TABLE educators ALTER COLUMN clever_id DROP NOT NULL;
ALTER TABLE educators ADD CONSTRAINT educators_connection_clever_id UNIQUE (connection, clever_id);
ALTER TABLE educators ADD COLUMN source text NOT NULL DEFAULT 'roster' CHECK (source IN ('roster', 'manual'));
CREATE INDEX educators_connection_email ON educators (connection, lower(btrim(email))) WHERE email IS NOT NULL;
CREATE INDEX educators_connection_sis_id ON educators (connection, sis_id) WHERE sis_id IS NOT NULL;

-- Links an admin made between a roster record (Clever id) and an existing product record
-- (`rostersync match link`). The link itself lives on the record (its clever_id), so it survives
-- later syncs; this table is its audit trail.
CREATE TABLE roster_links (
    id           bigserial   PRIMARY KEY,
    connection   text        NOT NULL,
    record_kind  text        NOT NULL CHECK (record_kind IN ('children', 'educators')),
    clever_id    text        NOT NULL,
    target_id    bigint      NOT NULL,
    linked_by    text        NOT NULL,
    linked_at    timestamptz NOT NULL DEFAULT now(),
    unlinked_by  text,
    unlinked_at  timestamptz
);
CREATE UNIQUE INDEX roster_links_current ON roster_links (connection, record_kind, clever_id)
    WHERE unlinked_at IS NULL;

-- The bulk journey updater's change log: one change per command, one item per child with its
-- journey before and after (reverted from here).
CREATE TABLE journey_changes (
    id           bigserial   PRIMARY KEY,
    connection   text        NOT NULL,
    -- How the children were selected (e.g. "grade=Preschool"), never names.
    selector     text        NOT NULL,
    journey      text,
    children     integer     NOT NULL,
    changed_by   text        NOT NULL,
    changed_at   timestamptz NOT NULL DEFAULT now(),
    reverted_by  text,
    reverted_at  timestamptz
);
CREATE INDEX journey_changes_connection ON journey_changes (connection, changed_at DESC);
CREATE TABLE journey_change_items (
    change_id    bigint NOT NULL REFERENCES journey_changes (id) ON DELETE CASCADE,
    child_id     bigint NOT NULL REFERENCES children (id) ON DELETE CASCADE,
    from_journey text,
    to_journey   text,
    PRIMARY KEY (change_id, child_id)
);

-- One row per school year rolled over (archived) per connection: a second rollover of the same
-- year changes nothing.
CREATE TABLE school_year_rollovers (
    connection   text        NOT NULL,
    school_year  text        NOT NULL CHECK (school_year ~ '^[0-9]{4}-[0-9]{4}$'),
    rolled_by    text        NOT NULL,
    rolled_at    timestamptz NOT NULL DEFAULT now(),
    children     integer     NOT NULL,
    enrollments  integer     NOT NULL,
    PRIMARY KEY (connection, school_year)
);
CREATE INDEX children_archived_year ON children (connection, archived_school_year)
    WHERE archived_school_year IS NOT NULL;

-- The products the operator holds licenses for (written by the operator from its configuration;
-- district roles may only read it).
CREATE TABLE product_licenses (
    product      text        PRIMARY KEY CHECK (length(product) BETWEEN 1 AND 100),
    updated_at   timestamptz NOT NULL DEFAULT now()
);

DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['roster_links', 'journey_changes', 'school_year_rollovers']
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
ALTER TABLE journey_change_items ENABLE ROW LEVEL SECURITY;
CREATE POLICY own_connection ON journey_change_items
    USING (EXISTS (SELECT 1 FROM journey_changes j WHERE j.id = journey_change_items.change_id))
    WITH CHECK (EXISTS (SELECT 1 FROM journey_changes j WHERE j.id = journey_change_items.change_id));
