-- An erasure finds the interactions a person left without naming an account by keyed hashes
-- the log keeps in the clear (`history::code_scopes_sent_to`, `history::interactions_typing`):
-- the recipient of each mailed code, and each identifier typed in a verification. Partial: only
-- those events pay for the index on append.
CREATE INDEX events_code_recipients ON events ((payload->>'recipientHash'))
    WHERE event_type = 'verification_code.sent';
CREATE INDEX events_identifier_keys ON events ((payload->>'identifierKey'))
    WHERE event_type IN ('interaction.verified', 'interaction.verification_failed');
