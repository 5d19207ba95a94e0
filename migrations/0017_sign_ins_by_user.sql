-- Time travel (`GET /api/users/:id?asOf=`, `replay user`) folds one user's events the way the
-- users projection does, which includes the sign-ins recorded by interactions. Those events name
-- the user only in their (non-personal) payload; without this index each lookup would scan the
-- whole log. Partial, so appends of every other event type pay nothing.
CREATE INDEX events_sign_ins_by_user ON events ((payload->>'userId'))
    WHERE stream_type = 'interaction' AND event_type = 'interaction.submitted';
