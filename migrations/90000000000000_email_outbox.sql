-- Email notifications (src/notify). Self-contained: no foreign keys to the sync tables, so it
-- applies (and its tests run) with or without them.

-- The outbox: one row per email, written in the same transaction as the event that caused it
-- (a run's outcome, a verification result), delivered by the sender (`rostersync controller`).
-- Bodies are rendered at enqueue time; they never contain children's names, birth dates or emails.
CREATE TABLE email_outbox (
    id              bigserial   PRIMARY KEY,
    -- "namespace/name" of the RosterConnection.
    connection      text        NOT NULL,
    -- RunFailed, RunHeld, Recovered, CredentialsInvalid, DistrictNotFound, ScheduleMissed, RunSucceeded
    kind            text        NOT NULL,
    -- What makes two events "the same" for repeat suppression (e.g. RunFailed:CleverUnavailable).
    fingerprint     text        NOT NULL,
    run_id          text,
    recipients      text[]      NOT NULL CHECK (cardinality(recipients) > 0),
    subject         text        NOT NULL,
    body_text       text        NOT NULL,
    body_html       text        NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    attempts        integer     NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    last_error      text,
    sent_at         timestamptz,
    -- Set when the sender gives up (a permanent SMTP rejection, repeated); never for an outage.
    failed_at       timestamptz
);
-- The sender's queue: due, undelivered rows.
CREATE INDEX email_outbox_pending ON email_outbox (next_attempt_at, id)
    WHERE sent_at IS NULL AND failed_at IS NULL;
CREATE INDEX email_outbox_connection ON email_outbox (connection, created_at DESC);

-- Per connection, the last state its recipients were told about (drives repeat suppression and
-- "recovered" emails). The row is locked (FOR UPDATE) by `enqueue`, which serialises concurrent
-- events of one connection.
CREATE TABLE notification_state (
    connection      text        PRIMARY KEY,
    kind            text,
    fingerprint     text,
    last_sent_at    timestamptz,
    last_outbox_id  bigint,
    -- A problem (failed / held run, invalid credentials, unknown district) was emailed and no
    -- recovery since: the next success is emailed as "recovered".
    problem_open    boolean     NOT NULL DEFAULT false,
    problem_since   timestamptz,
    updated_at      timestamptz NOT NULL DEFAULT now()
);
