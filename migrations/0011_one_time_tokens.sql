-- Read model of the `one_time_tokens` projection. Token values stay sealed in `vault`.

CREATE TABLE one_time_tokens (
    id          text   PRIMARY KEY,
    email       text   NOT NULL CHECK (length(email) <= 128),
    lookup_hash text   NOT NULL,
    vault_ref   text   NOT NULL,
    context     jsonb  NOT NULL,
    status      text   NOT NULL CHECK (status IN ('active', 'consumed', 'revoked', 'expired')),
    created_at  bigint NOT NULL,
    expires_at  bigint NOT NULL
);
CREATE UNIQUE INDEX one_time_tokens_lookup ON one_time_tokens (lookup_hash);
CREATE INDEX one_time_tokens_email ON one_time_tokens (email, created_at DESC);
CREATE INDEX one_time_tokens_created_at ON one_time_tokens (created_at DESC, id DESC);
