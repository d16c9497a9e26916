-- v7 -> v8: Direct chats
-- A direct chat between one Matrix user and one XMPP user is a portal row
-- with the two sides in dm_user and dm_jid (empty for rooms).
ALTER TABLE portal ADD COLUMN dm_user TEXT NOT NULL DEFAULT '';
ALTER TABLE portal ADD COLUMN dm_jid TEXT NOT NULL DEFAULT '';
CREATE UNIQUE INDEX portal_dm_idx ON portal (dm_user, dm_jid) WHERE dm_jid <> '';
