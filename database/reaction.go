package database

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"time"

	"go.mau.fi/util/dbutil"
	"maunium.net/go/mautrix/id"
)

// Reaction is one Matrix reaction event that crossed the bridge.
type Reaction struct {
	RoomID        id.RoomID
	EventID       id.EventID
	TargetEventID id.EventID
	Sender        id.UserID
	// KeyHash is KeyHash(secret, key): the key itself is not kept.
	KeyHash   string
	Timestamp time.Time
}

// KeyHash hashes a reaction key for the reaction table, keyed with a
// secret of the bridge: reaction keys are mostly emoji, and a plain hash of
// one is undone by hashing every emoji.
func KeyHash(secret []byte, key string) string {
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte("reaction key\x00"))
	mac.Write([]byte(key))
	return hex.EncodeToString(mac.Sum(nil)[:16])
}

func newReaction(_ *dbutil.QueryHelper[*Reaction]) *Reaction { return &Reaction{} }

const (
	reactionColumns         = `room_id, event_id, target_event_id, sender, key_hash, timestamp`
	getReactionByEventID    = `SELECT ` + reactionColumns + ` FROM reaction WHERE room_id=$1 AND event_id=$2`
	getReactionsBySender    = `SELECT ` + reactionColumns + ` FROM reaction WHERE room_id=$1 AND target_event_id=$2 AND sender=$3 ORDER BY timestamp`
	insertReaction          = `INSERT INTO reaction (` + reactionColumns + `) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (room_id, event_id) DO NOTHING`
	deleteReaction          = `DELETE FROM reaction WHERE room_id=$1 AND event_id=$2`
	deleteReactionsBefore   = `DELETE FROM reaction WHERE timestamp<$1`
	deleteReactionsBySender = `DELETE FROM reaction WHERE sender=$1`
)

// Scan implements dbutil.DataStruct.
func (r *Reaction) Scan(row dbutil.Scannable) (*Reaction, error) {
	var ts int64
	if err := row.Scan(&r.RoomID, &r.EventID, &r.TargetEventID, &r.Sender, &r.KeyHash, &ts); err != nil {
		return nil, err
	}
	r.Timestamp = time.UnixMilli(ts)
	return r, nil
}

// ReactionQuery reads and writes the reaction table.
type ReactionQuery struct {
	*dbutil.QueryHelper[*Reaction]
}

// GetByEventID returns a reaction by its event, or nil.
func (rq *ReactionQuery) GetByEventID(ctx context.Context, roomID id.RoomID, eventID id.EventID) (*Reaction, error) {
	return rq.QueryOne(ctx, getReactionByEventID, roomID, eventID)
}

// GetBySender returns one sender's reactions to one message, oldest first.
func (rq *ReactionQuery) GetBySender(ctx context.Context, roomID id.RoomID, target id.EventID, sender id.UserID) ([]*Reaction, error) {
	return rq.QueryMany(ctx, getReactionsBySender, roomID, target, sender)
}

// Insert adds a reaction; a known event is kept as it is.
func (rq *ReactionQuery) Insert(ctx context.Context, r *Reaction) error {
	return rq.Exec(ctx, insertReaction, r.RoomID, r.EventID, r.TargetEventID, r.Sender, r.KeyHash, r.Timestamp.UnixMilli())
}

// Delete removes a reaction.
func (rq *ReactionQuery) Delete(ctx context.Context, roomID id.RoomID, eventID id.EventID) error {
	return rq.Exec(ctx, deleteReaction, roomID, eventID)
}

// DeleteBefore removes reactions older than t.
func (rq *ReactionQuery) DeleteBefore(ctx context.Context, t time.Time) error {
	return rq.Exec(ctx, deleteReactionsBefore, t.UnixMilli())
}

// DeleteBySender removes every reaction of one sender.
func (rq *ReactionQuery) DeleteBySender(ctx context.Context, sender id.UserID) error {
	return rq.Exec(ctx, deleteReactionsBySender, sender)
}
