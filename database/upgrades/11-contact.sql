-- v10 -> v11: Matrix users' decisions about XMPP contacts
-- Who may see a Matrix user's presence (bridge.subscriptions: ask): an XMPP
-- user's subscription request waits for the Matrix user's allow or deny, and
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
