-- Consent for third-party applications: an interaction may be opened for a user who is
-- already signed in (the session stands in for the sign-in) only to ask for consent.
ALTER TABLE interactions ADD COLUMN session_id text;
