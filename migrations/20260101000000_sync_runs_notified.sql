-- When the controller reported a finished run (its email decided and, if any, queued in
-- email_outbox). Set once, with `UPDATE ... WHERE notified_at IS NULL`, in the same transaction
-- as the email, so each run is emailed at most once, across controller restarts and replicas.
-- NULL for runs nobody reported (still running, or run by hand outside a Job). Existing rows stay
-- NULL: the controller only reports Jobs it has not marked reported yet, so old runs are not
-- emailed after the upgrade.
ALTER TABLE sync_runs ADD COLUMN notified_at timestamptz;
