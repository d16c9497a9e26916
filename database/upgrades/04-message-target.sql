-- v3 -> v4: Remember which message an edit edits
ALTER TABLE message ADD COLUMN target_event_id TEXT NOT NULL DEFAULT '';
CREATE INDEX message_room_stanza_idx ON message (room_id, stanza_id);
