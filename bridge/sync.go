package bridge

import (
	"context"
	"sync"
	"sync/atomic"

	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/mxpp/mxpp/database"
	"github.com/mxpp/mxpp/matrix"
)

// Sync fallback modes (bridge.sync_fallback).
const (
	SyncAuto = "auto"
	SyncOn   = "on"
	SyncOff  = "off"
)

// syncStore keeps the bot's sync position in the kv table.
type syncStore struct{ db *database.Database }

func (s syncStore) LoadNextBatch(ctx context.Context) (string, error) {
	return s.db.GetValue(ctx, database.KeySyncNextBatch)
}

func (s syncStore) SaveNextBatch(ctx context.Context, token string) error {
	return s.db.SetValue(ctx, database.KeySyncNextBatch, token)
}

// keyWaitStore keeps the events that wait for their room key
// (matrix.PendingStore) in the bridge database.
type keyWaitStore struct{ db *database.Database }

func (s keyWaitStore) AddPending(ctx context.Context, roomID id.RoomID, eventID id.EventID) error {
	return s.db.KeyWait.Add(ctx, roomID, eventID)
}

func (s keyWaitStore) DeletePending(ctx context.Context, roomID id.RoomID, eventID id.EventID) error {
	return s.db.KeyWait.Delete(ctx, roomID, eventID)
}

func (s keyWaitStore) Pending(ctx context.Context) ([]matrix.PendingEvent, error) {
	rows, err := s.db.KeyWait.List(ctx)
	out := make([]matrix.PendingEvent, len(rows))
	for i, r := range rows {
		out[i] = matrix.PendingEvent{RoomID: r.RoomID, EventID: r.EventID}
	}
	return out, err
}

// eventFilter drops events that arrive twice, by push and by sync. In auto
// mode it also stops taking a kind of event from sync once the homeserver
// was seen pushing it.
type eventFilter struct {
	mode             string
	pushedRedactions atomic.Bool
	pushedEphemeral  atomic.Bool

	mu   sync.Mutex
	seen map[id.EventID]struct{}
	ring []id.EventID
	next int
}

func newEventFilter(mode string) *eventFilter {
	const size = 4096
	return &eventFilter{mode: mode, seen: make(map[id.EventID]struct{}, size), ring: make([]id.EventID, size)}
}

// wantSync reports whether the bot's sync still brings room events: not
// when the fallback is off, and in auto mode not once the homeserver was
// seen pushing both redactions and ephemeral events (all that sync would
// bring is then dropped anyway).
func (f *eventFilter) wantSync() bool {
	switch f.mode {
	case SyncOff:
		return false
	case SyncAuto:
		return !f.pushedRedactions.Load() || !f.pushedEphemeral.Load()
	}
	return true
}

// forget lets events be accepted again: they were not handled, and the
// homeserver sends them again.
func (f *eventFilter) forget(ids ...id.EventID) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, evtID := range ids {
		delete(f.seen, evtID)
	}
}

// accept reports whether an event is to be handled.
func (f *eventFilter) accept(evt *event.Event) bool {
	fromSync := matrix.FromSync(evt)
	ephemeral := evt.Type.Class == event.EphemeralEventType
	if !fromSync {
		switch {
		case ephemeral:
			f.pushedEphemeral.Store(true)
		case evt.Type == event.EventRedaction:
			f.pushedRedactions.Store(true)
		}
	} else if f.mode == SyncAuto && (ephemeral && f.pushedEphemeral.Load() || !ephemeral && f.pushedRedactions.Load()) {
		return false
	}
	if ephemeral {
		return true // handled idempotently by the portals
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, dup := f.seen[evt.ID]; dup {
		return false
	}
	delete(f.seen, f.ring[f.next])
	f.ring[f.next] = evt.ID
	f.seen[evt.ID] = struct{}{}
	f.next = (f.next + 1) % len(f.ring)
	return true
}
