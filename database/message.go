package database

import (
	"context"
	"database/sql"
	"time"

	"go.mau.fi/util/dbutil"
	"maunium.net/go/mautrix/id"
)

// Message maps one Matrix event to the XMPP stanza it was bridged from or to.
type Message struct {
	RoomID  id.RoomID
	EventID id.EventID
	// SenderJID is the sender as XMPP knows it: an XMPP user's bare JID, or
	// a Matrix user's contact JID on the component.
	SenderJID string
	// StanzaID is the sender's id for the stanza (origin-id, else id).
	StanzaID string
	// TargetEventID is, for an edit, the event it edits.
	TargetEventID id.EventID
	Timestamp     time.Time
	// RoomStanzaID is, in a MUC hosted elsewhere, the room's own stanza-id
	// of the message (XEP-0359), by which its occupants refer to it.
	RoomStanzaID string
}

func newMessage(_ *dbutil.QueryHelper[*Message]) *Message { return &Message{} }

func newMessageRow() *Message { return &Message{} }

const (
	messageColumns          = `room_id, event_id, sender_jid, stanza_id, target_event_id, timestamp, room_stanza_id`
	getMessageByEventID     = `SELECT ` + messageColumns + ` FROM message WHERE room_id=$1 AND event_id=$2`
	getMessageByStanzaID    = `SELECT ` + messageColumns + ` FROM message WHERE room_id=$1 AND sender_jid=$2 AND stanza_id=$3 ORDER BY timestamp DESC LIMIT 1`
	getMessageByAnyStanzaID = `SELECT ` + messageColumns + ` FROM message WHERE room_id=$1 AND stanza_id=$2 LIMIT 1`
	insertMessage           = `INSERT INTO message (` + messageColumns + `) VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (room_id, event_id) DO NOTHING`
	getMessageByRoomSID     = `SELECT ` + messageColumns + ` FROM message WHERE room_id=$1 AND room_stanza_id=$2 AND room_stanza_id<>'' LIMIT 1`
	setRoomStanzaID         = `UPDATE message SET room_stanza_id=$3 WHERE room_id=$1 AND event_id=$2`
	deleteMessagesBefore    = `DELETE FROM message WHERE timestamp<$1`
	deletePendingBefore     = `DELETE FROM pending_send WHERE created_at<$1`
	insertPending           = `INSERT INTO pending_send (room_id, txn_id, created_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING`
	deletePending           = `DELETE FROM pending_send WHERE room_id=$1 AND txn_id=$2`
	deleteMessagesBySender  = `DELETE FROM message WHERE sender_jid=$1`
)

// Scan implements dbutil.DataStruct.
func (m *Message) Scan(row dbutil.Scannable) (*Message, error) {
	var ts int64
	err := row.Scan(&m.RoomID, &m.EventID, &m.SenderJID, &m.StanzaID, &m.TargetEventID, &ts, &m.RoomStanzaID)
	if err != nil {
		return nil, err
	}
	m.Timestamp = time.UnixMilli(ts)
	return m, nil
}

// MessageQuery reads and writes the message-ID map.
type MessageQuery struct {
	*dbutil.QueryHelper[*Message]
	stmts *stmtCache
}

// GetByEventID returns the mapping of a Matrix event, or nil if there is none.
func (mq *MessageQuery) GetByEventID(ctx context.Context, roomID id.RoomID, eventID id.EventID) (*Message, error) {
	return queryOne(ctx, mq.stmts, newMessageRow, getMessageByEventID, roomID, eventID)
}

// GetByStanzaID returns the mapping of a sender's stanza in a room, or nil;
// the newest, where a client reused a plain stanza id.
func (mq *MessageQuery) GetByStanzaID(ctx context.Context, roomID id.RoomID, sender, stanzaID string) (*Message, error) {
	return queryOne(ctx, mq.stmts, newMessageRow, getMessageByStanzaID, roomID, sender, stanzaID)
}

// Insert adds a mapping; an existing one for the same event is kept.
func (mq *MessageQuery) Insert(ctx context.Context, m *Message) error {
	return mq.stmts.exec(ctx, insertMessage, m.RoomID, m.EventID, m.SenderJID, m.StanzaID, m.TargetEventID, m.Timestamp.UnixMilli(), m.RoomStanzaID)
}

// GetByRoomStanzaID returns the mapping of a message by the stanza-id a
// MUC hosted elsewhere gave it, or nil.
func (mq *MessageQuery) GetByRoomStanzaID(ctx context.Context, roomID id.RoomID, roomStanzaID string) (*Message, error) {
	return queryOne(ctx, mq.stmts, newMessageRow, getMessageByRoomSID, roomID, roomStanzaID)
}

// SetRoomStanzaID notes the stanza-id a MUC hosted elsewhere gave a message
// that went to it from Matrix: its reflection tells.
func (mq *MessageQuery) SetRoomStanzaID(ctx context.Context, roomID id.RoomID, eventID id.EventID, roomStanzaID string) error {
	return mq.stmts.exec(ctx, setRoomStanzaID, roomID, eventID, roomStanzaID)
}

// GetByAnyStanzaID returns a mapping by stanza id whoever sent it, or nil.
func (mq *MessageQuery) GetByAnyStanzaID(ctx context.Context, roomID id.RoomID, stanzaID string) (*Message, error) {
	return mq.QueryOne(ctx, getMessageByAnyStanzaID, roomID, stanzaID)
}

// DeleteBefore removes the mappings of messages older than t, and the
// pending sends begun before t.
func (mq *MessageQuery) DeleteBefore(ctx context.Context, t time.Time) error {
	if err := mq.Exec(ctx, deletePendingBefore, t.UnixMilli()); err != nil {
		return err
	}
	return mq.Exec(ctx, deleteMessagesBefore, t.UnixMilli())
}

// NewestTime returns when the newest mapping of a room was stored (zero
// for none).
func (mq *MessageQuery) NewestTime(ctx context.Context, roomID id.RoomID) (time.Time, error) {
	var ms sql.NullInt64
	if err := mq.GetDB().QueryRow(ctx, `SELECT MAX(timestamp) FROM message WHERE room_id=$1`, roomID).Scan(&ms); err != nil || !ms.Valid {
		return time.Time{}, err
	}
	return time.UnixMilli(ms.Int64), nil
}

// BeginSend notes that a send with txnID is about to go to the homeserver.
// It reports whether an earlier one was begun and never finished: that
// one may have reached the homeserver.
func (mq *MessageQuery) BeginSend(ctx context.Context, roomID id.RoomID, txnID string) (unfinished bool, err error) {
	n, err := mq.stmts.execN(ctx, insertPending, roomID, txnID, time.Now().UnixMilli())
	return err == nil && n == 0, err
}

// InsertSent adds the mapping of an event sent with txnID and forgets that
// send (BeginSend), in one commit.
func (mq *MessageQuery) InsertSent(ctx context.Context, m *Message, txnID string) error {
	return mq.stmts.execAll(ctx,
		statement{insertMessage, []any{m.RoomID, m.EventID, m.SenderJID, m.StanzaID, m.TargetEventID, m.Timestamp.UnixMilli(), m.RoomStanzaID}},
		statement{deletePending, []any{m.RoomID, txnID}})
}

// FinishSend forgets a pending send whose event ID is stored.
func (mq *MessageQuery) FinishSend(ctx context.Context, roomID id.RoomID, txnID string) error {
	return mq.stmts.exec(ctx, deletePending, roomID, txnID)
}

// DeleteBySender removes every mapping of one sender's messages.
func (mq *MessageQuery) DeleteBySender(ctx context.Context, senderJID string) error {
	return mq.Exec(ctx, deleteMessagesBySender, senderJID)
}
