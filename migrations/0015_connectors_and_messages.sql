-- Connectors (logto-compat §6) and the mail outbox's delivery state. Both are folds of the log.
--
-- A connector's `config` is its configuration without the secret fields (listed in
-- `secret_paths` as JSON pointers); their values are sealed in the vault under `secrets_ref`.

CREATE TABLE connectors (
    id                   text    PRIMARY KEY,
    connector_id         text    NOT NULL,
    type                 text    NOT NULL,
    config               jsonb   NOT NULL,
    secret_paths         jsonb   NOT NULL,
    secrets_ref          text,
    metadata             jsonb   NOT NULL,
    sync_profile         boolean NOT NULL,
    enable_token_storage boolean NOT NULL,
    created_at           bigint  NOT NULL,
    updated_at           bigint  NOT NULL
);

-- Logto keeps one Email and one SMS connector: a second one replaces the first.
CREATE UNIQUE INDEX connectors__passwordless_type ON connectors (type)
    WHERE type IN ('Email', 'Sms');

-- No recipient or content here: those stay sealed in the `message.queued` event.
CREATE TABLE messages (
    id              text    PRIMARY KEY,
    status          text    NOT NULL CHECK (status IN ('queued', 'sent', 'abandoned')),
    usage_type      text    NOT NULL,
    attempts        integer NOT NULL,
    last_attempt_at bigint,
    expires_at      bigint,
    created_at      bigint  NOT NULL,
    updated_at      bigint  NOT NULL
);
