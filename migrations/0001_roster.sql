-- The roster as the product sees it. Every row is scoped to its RosterConnection
-- (`connection` = "namespace/name"); Clever ids are unique only within a connection.

-- Matching key for names: trimmed, inner whitespace collapsed, lower case.
CREATE FUNCTION rs_name_key(first_name text, last_name text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT lower(regexp_replace(btrim(coalesce(first_name, '')), '\s+', ' ', 'g'))
      || '|' || lower(regexp_replace(btrim(coalesce(last_name, '')), '\s+', ' ', 'g'))
$$;

CREATE TABLE schools (
    connection   text        NOT NULL,
    clever_id    text        NOT NULL,
    name         text        NOT NULL,
    sis_id       text,
    low_grade    text,
    high_grade   text,
    active       boolean     NOT NULL DEFAULT true,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (connection, clever_id)
);

CREATE TABLE classrooms (
    connection          text        NOT NULL,
    clever_id           text        NOT NULL,
    school_clever_id    text        NOT NULL,
    -- The name Clever gives the section (always follows the roster).
    roster_name         text        NOT NULL,
    -- The name shown in the product; follows roster_name unless edited locally and the connection
    -- allows classroom name overrides.
    display_name        text        NOT NULL,
    name_edited_locally boolean     NOT NULL DEFAULT false,
    grade               text,
    subject             text,
    teacher_clever_id   text,
    active              boolean     NOT NULL DEFAULT true,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (connection, clever_id)
);

CREATE TABLE educators (
    connection        text        NOT NULL,
    clever_id         text        NOT NULL,
    school_clever_id  text,
    sis_id            text,
    first_name        text,
    last_name         text,
    email             text,
    title             text,
    active            boolean     NOT NULL DEFAULT true,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (connection, clever_id)
);

CREATE TABLE children (
    id                   bigserial   PRIMARY KEY,
    connection           text        NOT NULL,
    -- NULL for children entered manually in the product and not (yet) linked to the roster.
    clever_id            text,
    sis_id               text,
    first_name           text,
    last_name            text,
    school_clever_id     text,
    grade                text,
    placement_level      integer,
    journey              text,
    -- Demographics: stored only while the connection shares them (NULL otherwise).
    dob                  date,
    gender               text,
    ell_status           text,
    hispanic_ethnicity   text,
    race                 text,
    home_language        text,
    iep_status           text,
    frl_status           text,
    source               text        NOT NULL DEFAULT 'roster' CHECK (source IN ('roster', 'manual')),
    active               boolean     NOT NULL DEFAULT true,
    -- Set when the child was archived at a school-year rollover (e.g. '2024-2025'); archived
    -- children are candidates for carry-over.
    archived_school_year text,
    has_progress         boolean     NOT NULL DEFAULT false,
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now()
);
-- A Clever id identifies one current child per connection; archived children may share it.
CREATE UNIQUE INDEX children_connection_clever_id
    ON children (connection, clever_id) WHERE archived_school_year IS NULL AND clever_id IS NOT NULL;
CREATE INDEX children_connection_sis_id ON children (connection, sis_id) WHERE sis_id IS NOT NULL;
CREATE INDEX children_connection_name_key ON children (connection, rs_name_key(first_name, last_name));
CREATE INDEX children_archived ON children (connection) WHERE archived_school_year IS NOT NULL;

-- A child belongs to one classroom.
CREATE TABLE enrollments (
    child_id             bigint      PRIMARY KEY REFERENCES children (id) ON DELETE CASCADE,
    connection           text        NOT NULL,
    classroom_clever_id  text        NOT NULL,
    active               boolean     NOT NULL DEFAULT true,
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (connection, classroom_clever_id)
        REFERENCES classrooms (connection, clever_id) ON DELETE CASCADE
);
CREATE INDEX enrollments_connection ON enrollments (connection, classroom_clever_id);
