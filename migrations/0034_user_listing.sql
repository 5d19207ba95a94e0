-- Listing a million users within milliseconds (issue 5's benchmark targets).

-- How many rows `users` has, kept by the users projection in the append transaction, so that
-- `Total-Number` without a search needs no count of the table. One row while there are users,
-- none otherwise: a refold that never saw a user and a table whose users all left compare equal.
CREATE TABLE user_count (users bigint NOT NULL CHECK (users >= 0));
INSERT INTO user_count SELECT count(*) FROM users HAVING count(*) > 0;

-- Case-insensitive exact username searches (`lower(username) = lower($1)`), and sign-ins under
-- a case-insensitive username policy, on an index rather than a scan of the table.
CREATE INDEX users_lower_username ON users (lower(username));

-- New trigram entries wait in each GIN index's pending list until a vacuum or an overflowing
-- insert merges them, and every search scans the whole list (five lists for a default search).
-- Measured on a million users after 24 000 more were inserted 16 at a time: the default search
-- took 33 to 48 ms with the default 4 MB lists and 7 to 13 ms with 256 kB ones, and the inserts
-- took 20 to 50% longer (more, smaller merges).
ALTER INDEX users_id_trgm SET (gin_pending_list_limit = 256);
ALTER INDEX users_username_trgm SET (gin_pending_list_limit = 256);
ALTER INDEX users_primary_email_trgm SET (gin_pending_list_limit = 256);
ALTER INDEX users_primary_phone_trgm SET (gin_pending_list_limit = 256);
ALTER INDEX users_name_trgm SET (gin_pending_list_limit = 256);
