-- How many times a run id was started: a run that failed with a retriable error (a Clever 503, a
-- database error) is run again by the Job's next attempt under the same run id, and history shows
-- how many attempts it took. Existing rows ran once.
ALTER TABLE sync_runs ADD COLUMN attempts integer NOT NULL DEFAULT 1 CHECK (attempts >= 1);
