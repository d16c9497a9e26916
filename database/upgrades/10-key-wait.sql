-- v9 -> v10: Matrix events that wait for their room key
-- An encrypted event whose room key had not reached the bridge's device yet,
-- and the events of its room behind it, leave their transaction and wait
-- beside it. Their IDs (never their content) are kept until each was
-- handled, so that after a restart the bridge fetches them again.
CREATE TABLE key_wait (
	room_id  TEXT   NOT NULL,
	event_id TEXT   NOT NULL,
	-- The order they came in.
	seq      BIGINT NOT NULL,
	PRIMARY KEY (room_id, event_id)
);
