-- Second factors (projections/src/users.rs): one row per factor a user holds. The TOTP secret
-- stays in the vault (`vault_ref`); backup codes are keyed hashes, the unused ones listed.
CREATE TABLE user_mfa_verifications (
    user_id            text   NOT NULL,
    id                 text   NOT NULL,
    kind               text   NOT NULL CHECK (kind IN ('Totp', 'BackupCode')),
    vault_ref          text,
    unused_code_hashes jsonb  NOT NULL,
    created_at         bigint NOT NULL,
    last_used_at       bigint,
    PRIMARY KEY (user_id, id)
);

-- What an interaction sets up of second factors before submission
-- (projections/src/interactions.rs): enrolments by verification id, bound ones, a skip.
ALTER TABLE interactions ADD COLUMN mfa jsonb NOT NULL DEFAULT '{}';
