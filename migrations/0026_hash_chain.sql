-- Tamper evidence: every event carries a SHA-256 chained over the previous event's hash and its
-- own stored content (`src/store/chain.rs` defines the canonical bytes). The head row keeps the
-- newest hash so an appender, holding the head lock, knows what to chain to.
-- Events appended before this migration have no hash: the chain starts after them
-- (`event_head.chain_from`), and `replay verify` reports them as unchained.
ALTER TABLE events ADD COLUMN hash bytea;
ALTER TABLE event_head ADD COLUMN hash bytea;
ALTER TABLE event_head ADD COLUMN chain_from bigint;
UPDATE event_head SET chain_from = position + 1;
ALTER TABLE event_head ALTER COLUMN chain_from SET NOT NULL;

-- The key that signs checkpoints of the chain head (Ed25519). The private key is sealed under the
-- key-encryption key like the vault's entries; the public key stays for as long as checkpoints
-- signed by it exist, so old checkpoints keep verifying after a new key is made.
CREATE TABLE chain_keys (
    id          text PRIMARY KEY,
    public_key  bytea NOT NULL,
    sealed_key  bytea NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- Signed statements "the chain's head was `hash` at `position`". Not a projection: nothing
-- refolds them; they are evidence kept beside the log (and best copied out of the database).
CREATE TABLE chain_checkpoints (
    position     bigint PRIMARY KEY,
    hash         bytea  NOT NULL,
    key_id       text   NOT NULL REFERENCES chain_keys (id),
    signature    bytea  NOT NULL,
    -- Who asked: `schedule` for the periodic ones, else the Management API caller.
    recorded_by  text   NOT NULL,
    recorded_at  timestamptz NOT NULL DEFAULT now()
);
