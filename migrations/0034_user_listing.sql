-- Listing a million users within milliseconds (issue 5's benchmark targets).

-- How many rows `users` has, kept by the users projection in the append transaction, so that
-- `Total-Number` without a search needs no count of the table. One row while there are users,
-- none otherwise: a refold that never saw a user and a table whose users all left compare equal.
CREATE TABLE user_count (users bigint NOT NULL CHECK (users >= 0));
INSERT INTO user_count SELECT count(*) FROM users HAVING count(*) > 0;

-- Case-insensitive exact username searches (`lower(username) = lower($1)`), and sign-ins under
-- a case-insensitive username policy, on an index rather than a scan of the table.
CREATE INDEX users_lower_username ON users (lower(username));
