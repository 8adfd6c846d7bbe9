-- One row per sync run, written at start (Running) and completed at the end.
CREATE TABLE sync_runs (
    run_id        text        PRIMARY KEY,
    connection    text        NOT NULL,
    schedule      text,
    trigger       text        NOT NULL CHECK (trigger IN ('Scheduled', 'Manual', 'CatchUp')),
    job           text,
    dry_run       boolean     NOT NULL DEFAULT false,
    started_at    timestamptz NOT NULL DEFAULT now(),
    finished_at   timestamptz,
    result        text        NOT NULL CHECK (result IN ('Running', 'Succeeded', 'Failed', 'Held')),
    -- Whether a Failed run may succeed when retried (drives the exit code 1 versus 2).
    retriable     boolean     NOT NULL DEFAULT false,
    -- {"schools": {"created": 0, ...}, ...}: the JSON output's counts.
    counts        jsonb       NOT NULL DEFAULT '{}'::jsonb,
    problems      integer     NOT NULL DEFAULT 0,
    -- {"MultipleSections": 3, ...}
    problem_codes jsonb       NOT NULL DEFAULT '{}'::jsonb,
    -- A stable label (RemovalGuard, CredentialsInvalid, CleverUnavailable, ...) and a one-line
    -- message; never personal data.
    reason        text,
    message       text,
    -- {"fetchMs": .., "applyMs": .., "totalMs": ..}
    timings       jsonb       NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX sync_runs_connection_started ON sync_runs (connection, started_at DESC);
CREATE INDEX sync_runs_started ON sync_runs (started_at DESC);

-- Per-record problems of a run. No names, birth dates or emails: ids and codes only.
CREATE TABLE sync_problems (
    id           bigserial   PRIMARY KEY,
    run_id       text        NOT NULL REFERENCES sync_runs (run_id) ON DELETE CASCADE,
    record_kind  text        NOT NULL,
    clever_id    text,
    code         text        NOT NULL,
    message      text        NOT NULL
);
CREATE INDEX sync_problems_run ON sync_problems (run_id);
