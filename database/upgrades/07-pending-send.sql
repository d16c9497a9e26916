-- v6 -> v7: Sends to Matrix that may have landed unconfirmed
-- A row is written before an XMPP stanza is sent to Matrix and removed once
-- its event ID is stored. A row left over (the bridge died in between) tells
-- the next attempt to look for the event in the room before sending again.
CREATE TABLE pending_send (
	room_id    TEXT   NOT NULL REFERENCES portal(room_id) ON DELETE CASCADE,
	-- The Matrix transaction ID: a hash, naming no user.
	txn_id     TEXT   NOT NULL,
	created_at BIGINT NOT NULL,
	PRIMARY KEY (room_id, txn_id)
);
