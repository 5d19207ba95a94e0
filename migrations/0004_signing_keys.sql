-- Read model of the `signing_keys` projection. Private keys stay sealed in `vault`.

CREATE TABLE signing_keys (
    kid        text   PRIMARY KEY,
    algorithm  text   NOT NULL,
    public_jwk jsonb  NOT NULL,
    vault_ref  text   NOT NULL,
    stream_id  text   NOT NULL,
    generation bigint NOT NULL,
    created_at bigint NOT NULL
);
