-- v2 -> v3: Remember the XEP-0153 hash of each puppet's avatar
ALTER TABLE puppet ADD COLUMN avatar_hash TEXT NOT NULL DEFAULT '';
