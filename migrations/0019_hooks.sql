-- Webhooks (projections/src/hooks.rs). The signing key is in the vault (`signing_key_ref`).
CREATE TABLE hooks (
    id              text    PRIMARY KEY,
    name            text    NOT NULL,
    event           text,
    events          jsonb   NOT NULL,
    config          jsonb   NOT NULL,
    enabled         boolean NOT NULL,
    signing_key_ref text    NOT NULL,
    created_at      bigint  NOT NULL,
    updated_at      bigint  NOT NULL
);

-- Where each delivery (one log event for one hook) stands, for the webhook follower.
CREATE TABLE hook_deliveries (
    id               text   PRIMARY KEY,
    hook_id          text   NOT NULL,
    position         bigint NOT NULL,
    event            text   NOT NULL,
    status           text   NOT NULL CHECK (status IN ('pending', 'delivered', 'abandoned')),
    attempts         integer NOT NULL,
    body             jsonb,
    first_attempt_at bigint NOT NULL,
    last_attempt_at  bigint NOT NULL
);

-- `GET /api/hooks/:id/recent-logs` and `executionStats` read one hook's recent attempts.
CREATE INDEX logs_hook ON logs ((payload->>'hookId'), created_at) WHERE key LIKE 'TriggerHook.%';
