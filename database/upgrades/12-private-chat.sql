-- v11 -> v12: private messages in rooms
-- A private chat is a direct chat that an XMPP occupant opened with a
-- Matrix member of a hosted room (XEP-0045 §7.5): dm_via is the occupant
-- JID our side speaks from (room@component/nick), '' for other chats. An
-- occupant of a MUC hosted elsewhere may open one too: dm_jid is then their
-- occupant JID (room@service/nick), dm_via the Matrix user's occupant JID
-- there, and dm_puppet the occupant's puppet ('' for the puppet of dm_jid).
-- A room may turn private messages off (allow_pm).
ALTER TABLE portal ADD COLUMN dm_via TEXT NOT NULL DEFAULT '';
ALTER TABLE portal ADD COLUMN dm_puppet TEXT NOT NULL DEFAULT '';
DROP INDEX portal_dm_idx;
CREATE UNIQUE INDEX portal_dm_idx ON portal (dm_user, dm_jid, dm_via) WHERE dm_jid <> '';
ALTER TABLE room_settings ADD COLUMN allow_pm BOOLEAN NOT NULL DEFAULT true;
