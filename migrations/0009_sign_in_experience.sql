-- Read model of the `sign_in_experience` projection: the configuration in force, as the last
-- `sign_in_experience.updated` event recorded it. No row means Logto's default applies.

CREATE TABLE sign_in_experience (
    id         text   PRIMARY KEY,
    config     jsonb  NOT NULL,
    updated_at bigint NOT NULL
);
