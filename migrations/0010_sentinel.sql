-- Brute-force protection shared by every node: request counters per rate-limit window and
-- failure tallies per identifier. These are operational tables, not read models: no event feeds
-- them, `replay` neither rebuilds nor checks them, and losing them only resets the counters.
-- Keys are keyed hashes (HMAC) of IPs and identifiers, never the values themselves.

-- One row per (bucket, key, window); a request is counted by an atomic upsert, so concurrent
-- requests on several nodes each get their own count.
CREATE TABLE rate_counters (
    bucket       text    NOT NULL,
    key          text    NOT NULL,
    window_start bigint  NOT NULL,
    count        integer NOT NULL,
    -- When the window closes; rows past it are deleted opportunistically.
    expires_at   bigint  NOT NULL,
    PRIMARY KEY (bucket, key, window_start)
);
CREATE INDEX rate_counters_expires_at ON rate_counters (expires_at);

-- Failed verifications per identifier since `first_failure_at`, and the lock they tripped.
CREATE TABLE lockouts (
    key              text    PRIMARY KEY,
    failures         integer NOT NULL,
    first_failure_at bigint  NOT NULL,
    locked_until     bigint
);
