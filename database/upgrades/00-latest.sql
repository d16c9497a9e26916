-- v0 -> v12: Latest revision
-- Only identifiers live here: no message body, subject text or profile data
-- beyond what addressing needs.

-- A portal is a Matrix room that XMPP users can reach as a MUC.
-- A direct chat between one Matrix user and one XMPP user is a portal too
-- (its messages and reactions map the same way): alias is empty, muc_local
-- is the room ID (no MUC address starts with '!'), dm_user and dm_jid name
-- the two sides. Both are empty for rooms.
-- A private chat, opened by an XMPP occupant's private message to a Matrix
-- member of a hosted room, is a direct chat whose dm_via is the occupant JID
-- the member speaks from (room@component/nick); '' for other chats. One
-- opened by an occupant of a MUC hosted elsewhere has their occupant JID
-- (room@service/nick) in dm_jid, the Matrix user's occupant JID there in
-- dm_via, and the occupant's puppet in dm_puppet ('' for dm_jid's puppet).
-- So is a portal into a MUC hosted elsewhere: alias is its #_xmpp_… alias,
-- muc_local the room ID, remote_jid the MUC's bare JID ('' for the others).
CREATE TABLE portal (
	room_id    TEXT    PRIMARY KEY,
	-- The canonical alias on Matrix, with its original case.
	alias      TEXT    NOT NULL,
	-- The MUC localpart after case folding: how XMPP addresses the room.
	muc_local  TEXT    NOT NULL UNIQUE,
	created_at BIGINT  NOT NULL,
	dm_user    TEXT    NOT NULL DEFAULT '',
	dm_jid     TEXT    NOT NULL DEFAULT '',
	dm_via     TEXT    NOT NULL DEFAULT '',
	dm_puppet  TEXT    NOT NULL DEFAULT '',
	remote_jid TEXT    NOT NULL DEFAULT ''
);
CREATE UNIQUE INDEX portal_dm_idx ON portal (dm_user, dm_jid, dm_via) WHERE dm_jid <> '';
CREATE UNIQUE INDEX portal_remote_idx ON portal (remote_jid) WHERE remote_jid <> '';

-- A puppet is the Matrix user that stands for one XMPP user (a bare JID).
CREATE TABLE puppet (
	jid        TEXT    PRIMARY KEY,
	mxid       TEXT    NOT NULL UNIQUE,
	-- Whether the homeserver already knows the user (appservice register).
	registered BOOLEAN NOT NULL DEFAULT false,
	-- XEP-0153 hash of the avatar last copied to the puppet ('' for none).
	avatar_hash TEXT NOT NULL DEFAULT '',
	-- When the user left its last room (0 while in one), for clean-up.
	left_at    BIGINT  NOT NULL DEFAULT 0,
	created_at BIGINT  NOT NULL
);

-- An occupant session: one full JID of an XMPP user joined to a portal's MUC.
-- Several resources of one user share the nick and the puppet.
CREATE TABLE occupant (
	room_id    TEXT    NOT NULL REFERENCES portal(room_id) ON DELETE CASCADE,
	full_jid   TEXT    NOT NULL,
	user_jid   TEXT    NOT NULL REFERENCES puppet(jid) ON DELETE CASCADE,
	nick       TEXT    NOT NULL,
	joined_at  BIGINT  NOT NULL,
	PRIMARY KEY (room_id, full_jid)
);
CREATE INDEX occupant_user_idx ON occupant (user_jid);

-- The message-ID map: which Matrix event is which XMPP stanza in a room.
CREATE TABLE message (
	room_id    TEXT    NOT NULL REFERENCES portal(room_id) ON DELETE CASCADE,
	event_id   TEXT    NOT NULL,
	-- The sender as the XMPP side knows it: a bare JID for XMPP users, the
	-- contact JID for Matrix users.
	sender_jid TEXT    NOT NULL,
	-- The id the XMPP sender gave the stanza (origin-id if present, else id).
	stanza_id  TEXT    NOT NULL,
	-- For an edit, the event it edits ('' for anything else).
	target_event_id TEXT NOT NULL DEFAULT '',
	timestamp  BIGINT  NOT NULL,
	-- In a MUC hosted elsewhere, the room's own stanza-id (XEP-0359), by
	-- which its occupants reply, react and retract ('' elsewhere).
	room_stanza_id TEXT NOT NULL DEFAULT '',
	PRIMARY KEY (room_id, event_id)
);
CREATE INDEX message_stanza_idx ON message (room_id, sender_jid, stanza_id);
CREATE INDEX message_room_stanza_idx ON message (room_id, stanza_id);
CREATE INDEX message_timestamp_idx ON message (timestamp);
CREATE INDEX message_room_sid_idx ON message (room_id, room_stanza_id) WHERE room_stanza_id <> '';

-- Sends to Matrix that may have landed unconfirmed: written before an XMPP
-- stanza is sent, removed once its event ID is stored. A row left over (the
-- bridge died in between) makes the next attempt look for the event first.
CREATE TABLE pending_send (
	room_id    TEXT   NOT NULL REFERENCES portal(room_id) ON DELETE CASCADE,
	-- The Matrix transaction ID: a hash, naming no user.
	txn_id     TEXT   NOT NULL,
	created_at BIGINT NOT NULL,
	PRIMARY KEY (room_id, txn_id)
);

-- Reactions: which reaction event is whose, on which message.
CREATE TABLE reaction (
	room_id         TEXT   NOT NULL REFERENCES portal(room_id) ON DELETE CASCADE,
	-- The m.reaction event.
	event_id        TEXT   NOT NULL,
	target_event_id TEXT   NOT NULL,
	-- The Matrix user or puppet who reacted.
	sender          TEXT   NOT NULL,
	-- SHA-256 of the reaction key: enough to compare, without keeping it.
	key_hash        TEXT   NOT NULL,
	timestamp       BIGINT NOT NULL,
	PRIMARY KEY (room_id, event_id)
);
CREATE INDEX reaction_target_idx ON reaction (room_id, target_event_id, sender);

-- Room exposure and domain lists.
CREATE TABLE room_settings (
	room_id         TEXT    PRIMARY KEY,
	exposed         BOOLEAN NOT NULL DEFAULT false,
	-- Who exposed the room, and when (for the audit trail).
	exposed_by      TEXT    NOT NULL DEFAULT '',
	exposed_at      BIGINT  NOT NULL DEFAULT 0,
	-- Space-separated domain patterns that override xmpp.allowed_domains
	-- and add to xmpp.denied_domains for this room.
	allowed_domains TEXT    NOT NULL DEFAULT '',
	denied_domains  TEXT    NOT NULL DEFAULT '',
	-- Whether occupants may send private messages (XEP-0045 §7.5).
	allow_pm        BOOLEAN NOT NULL DEFAULT true
);

-- Small bridge-wide values, such as the key that makes occupant ids.
CREATE TABLE kv (
	key   TEXT PRIMARY KEY,
	value TEXT NOT NULL
);

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

-- Matrix events that wait for their room key (encrypted, the key not at the
-- bridge's device yet), and the events of their room behind them: their IDs
-- only, until each was handled, so that a restart fetches them again.
CREATE TABLE key_wait (
	room_id  TEXT   NOT NULL,
	event_id TEXT   NOT NULL,
	-- The order they came in.
	seq      BIGINT NOT NULL,
	PRIMARY KEY (room_id, event_id)
);

-- Who may see a Matrix user's presence: an XMPP user's subscription request
-- waits for the Matrix user's allow or deny (bridge.subscriptions: ask), and
-- a blocked JID may neither subscribe nor chat. IDs only.
CREATE TABLE contact (
	user_id    TEXT   NOT NULL,
	jid        TEXT   NOT NULL,
	-- pending, allowed, denied or blocked.
	state      TEXT   NOT NULL,
	updated_at BIGINT NOT NULL,
	PRIMARY KEY (user_id, jid)
);
CREATE INDEX contact_jid_idx ON contact (jid);
