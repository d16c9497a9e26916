-- v5 -> v6: Room exposure and domain lists, and when a puppet left its last room
CREATE TABLE room_settings (
	room_id         TEXT    PRIMARY KEY,
	exposed         BOOLEAN NOT NULL DEFAULT false,
	-- Who exposed the room, and when (for the audit trail).
	exposed_by      TEXT    NOT NULL DEFAULT '',
	exposed_at      BIGINT  NOT NULL DEFAULT 0,
	-- Space-separated domain patterns that override xmpp.allowed_domains
	-- and add to xmpp.denied_domains for this room.
	allowed_domains TEXT    NOT NULL DEFAULT '',
	denied_domains  TEXT    NOT NULL DEFAULT ''
);
ALTER TABLE puppet ADD COLUMN left_at BIGINT NOT NULL DEFAULT 0;
