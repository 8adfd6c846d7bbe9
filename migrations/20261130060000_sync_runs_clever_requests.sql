-- What a run cost Clever: {"requests": N, "retries": N, "rateLimited": N} (HTTP requests sent,
-- retries included; retries; 429 answers). The sync Job writes it with the outcome; the controller
-- exports it as rostersync_clever_{requests,retries,rate_limited}_total per connection.
ALTER TABLE sync_runs ADD COLUMN clever_requests jsonb NOT NULL DEFAULT '{}'::jsonb;
