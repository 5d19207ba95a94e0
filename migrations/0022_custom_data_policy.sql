-- Read model of the `custom_data_policy` projection: which custom data keys end users may write
-- through the Account API, with each key's JSON Schema, as the last
-- `custom_data_policy.replaced` event recorded it. No row means users write no key.

CREATE TABLE custom_data_policy (
    id         text   PRIMARY KEY,
    policy     jsonb  NOT NULL,
    updated_at bigint NOT NULL
);
