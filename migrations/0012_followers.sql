-- Where each background log follower (mail delivery, webhooks) has read up to. Operational
-- state, like `rate_counters`: not a projection, not rebuilt by replay.

CREATE TABLE follower_checkpoints (
    name     text   PRIMARY KEY,
    position bigint NOT NULL
);
