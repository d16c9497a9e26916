-- v4 -> v5: Reactions: which reaction event is whose, on which message
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
