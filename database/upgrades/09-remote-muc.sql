-- v8 -> v9: Portals into MUCs hosted elsewhere
-- Such a portal is a portal row too, so that its messages, reactions and
-- pending sends map the same way: alias is its #_xmpp_… alias, muc_local
-- the room ID (like direct chats), and remote_jid the MUC's bare JID ('' for
-- the other kinds).
ALTER TABLE portal ADD COLUMN remote_jid TEXT NOT NULL DEFAULT '';
CREATE UNIQUE INDEX portal_remote_idx ON portal (remote_jid) WHERE remote_jid <> '';

-- The MUC's own stanza-id (XEP-0359) of a message in a MUC hosted elsewhere,
-- by which the room's occupants reply, react and retract ('' elsewhere).
ALTER TABLE message ADD COLUMN room_stanza_id TEXT NOT NULL DEFAULT '';
CREATE INDEX message_room_sid_idx ON message (room_id, room_stanza_id) WHERE room_stanza_id <> '';

-- What the bridge needs of a MUC hosted elsewhere beyond the portal row.
CREATE TABLE remote_room (
	room_id        TEXT   PRIMARY KEY REFERENCES portal(room_id) ON DELETE CASCADE,
	-- The password the room asks for ('' for none): given with the join
	-- command, needed to rejoin; never written to Matrix or the log.
	password       TEXT   NOT NULL DEFAULT '',
	-- The room's stanza-id of the newest message bridged from it, and its
	-- time: where catching up from the room's archive starts.
	last_stanza_id TEXT   NOT NULL DEFAULT '',
	last_ts        BIGINT NOT NULL DEFAULT 0
);

-- A Matrix user's occupant of a MUC hosted elsewhere.
CREATE TABLE remote_occupant (
	room_id TEXT    NOT NULL REFERENCES portal(room_id) ON DELETE CASCADE,
	user_id TEXT    NOT NULL,
	-- The nick the room knew the user by last ('' before the first join).
	nick    TEXT    NOT NULL DEFAULT '',
	-- false after a kick, a ban or a refused join: the bridge does not
	-- rejoin until the user joins the Matrix room again.
	active  BOOLEAN NOT NULL DEFAULT true,
	PRIMARY KEY (room_id, user_id)
);
CREATE INDEX remote_occupant_user_idx ON remote_occupant (user_id);

-- Puppets of occupants known only within one MUC hosted elsewhere (a
-- semi-anonymous room): by a token of their occupant-id or first nick.
CREATE TABLE room_puppet (
	room_id TEXT NOT NULL REFERENCES portal(room_id) ON DELETE CASCADE,
	token   TEXT NOT NULL,
	mxid    TEXT NOT NULL,
	-- The nick the occupant has now: in a room without occupant-ids, how
	-- the bridge knows it again after a restart.
	nick    TEXT NOT NULL,
	PRIMARY KEY (room_id, token)
);
