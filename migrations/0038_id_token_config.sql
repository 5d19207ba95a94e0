-- Read model of the `id_token_config` projection: which extended claims the ID token carries
-- (Logto's `logto_configs` key `idToken`), as the last `id_token_config.replaced` event
-- recorded it. No row means the ID token carries no extended claim.

CREATE TABLE id_token_config (
    id         text   PRIMARY KEY,
    config     jsonb  NOT NULL,
    updated_at bigint NOT NULL
);
