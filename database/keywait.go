package database

import (
	"context"
	"sync"
	"time"

	"go.mau.fi/util/dbutil"
	"maunium.net/go/mautrix/id"
)

// KeyWait names a Matrix event that waits for its room key.
type KeyWait struct {
	RoomID  id.RoomID
	EventID id.EventID
}

// KeyWaitQuery keeps the IDs of the Matrix events that wait for their
// room key, in the order they came.
type KeyWaitQuery struct {
	db *dbutil.Database

	mu   sync.Mutex
	last int64 // the last seq given out: strictly increasing
}

const (
	insertKeyWait = `INSERT INTO key_wait (room_id, event_id, seq) VALUES ($1, $2, $3) ON CONFLICT (room_id, event_id) DO NOTHING`
	deleteKeyWait = `DELETE FROM key_wait WHERE room_id=$1 AND event_id=$2`
	listKeyWaits  = `SELECT room_id, event_id FROM key_wait ORDER BY seq`
)

// Add notes an event that waits.
func (q *KeyWaitQuery) Add(ctx context.Context, roomID id.RoomID, eventID id.EventID) error {
	q.mu.Lock()
	q.last = max(q.last+1, time.Now().UnixNano())
	seq := q.last
	q.mu.Unlock()
	_, err := q.db.Exec(ctx, insertKeyWait, roomID, eventID, seq)
	return err
}

// Delete forgets an event that no longer waits.
func (q *KeyWaitQuery) Delete(ctx context.Context, roomID id.RoomID, eventID id.EventID) error {
	_, err := q.db.Exec(ctx, deleteKeyWait, roomID, eventID)
	return err
}

// List returns the waiting events, oldest first.
func (q *KeyWaitQuery) List(ctx context.Context) ([]KeyWait, error) {
	rows, err := q.db.Query(ctx, listKeyWaits)
	return dbutil.NewRowIterWithError(rows, func(row dbutil.Scannable) (KeyWait, error) {
		var w KeyWait
		return w, row.Scan(&w.RoomID, &w.EventID)
	}, err).AsList()
}
