package matrix

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/rs/zerolog"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
)

// Events that wait for their room key. A Matrix client sends the room key
// to the bridge's device (to-device) and the encrypted message (the room's
// timeline) on separate paths, and the message may come first. The
// homeserver sends one transaction at a time, so a wait inside one would
// hold up every room. An event whose key has not arrived therefore leaves
// its transaction: the room's later events queue behind it, a goroutine of
// the room waits for the key and hands them on in order, and the
// transaction is answered without them.
//
// One room's wait is bounded: the first event that needs a key opens a
// window of keyWait, and every event of the room queued meanwhile waits
// only until the window closes, so that a burst of events with keys that
// never come (forged, or from a broken client) costs the room keyWait, not
// keyWait each. What stays undecryptable gets a notice, at most one per
// room per undecryptableNoticeEvery.
//
// So that a restart loses nothing, the IDs of waiting events (never their
// content) are kept in a PendingStore until each was handed on and
// delivered; at start the bridge fetches them from the homeserver again
// (ResumeKeyWaits).

// PendingStore keeps, across restarts, the IDs of the events that wait for
// a room key, and of the events of their room behind them.
type PendingStore interface {
	AddPending(ctx context.Context, roomID id.RoomID, eventID id.EventID) error
	DeletePending(ctx context.Context, roomID id.RoomID, eventID id.EventID) error
	// Pending lists the waiting events, oldest first.
	Pending(ctx context.Context) ([]PendingEvent, error)
}

// PendingEvent names an event that waits for a room key.
type PendingEvent struct {
	RoomID  id.RoomID
	EventID id.EventID
}

// undecryptableNoticeEvery bounds the notices about undecryptable events
// to one per room in this time.
const undecryptableNoticeEvery = time.Minute

// keyRoom is one room's events waiting behind a missing room key.
type keyRoom struct {
	queue []*event.Event
	// window is when waiting for keys ends for this room's queue.
	window time.Time
}

// keyWaits are the rooms with events waiting for a room key.
type keyWaits struct {
	mu      sync.Mutex
	rooms   map[id.RoomID]*keyRoom
	noticed map[id.RoomID]time.Time // the last undecryptable notice per room
	store   PendingStore
	ctx     context.Context // ends with the bridge
	running sync.WaitGroup
}

// SetPendingStore makes the IDs of events that wait for a room key
// survive a restart. Without one, a restart loses the events waiting then.
func (c *Connector) SetPendingStore(s PendingStore) { c.keys.store = s }

// queueBehindKey queues an event behind its room's wait, if the room has
// one, and reports whether it did.
func (c *Connector) queueBehindKey(ctx context.Context, evt *event.Event) bool {
	return c.enqueueKeyWait(ctx, evt, false, true)
}

// waitForKey starts a wait for the room key of evt in its room, or queues
// evt behind the room's wait. store notes its ID (not for events read back
// from the store).
func (c *Connector) waitForKey(ctx context.Context, evt *event.Event, store bool) {
	c.enqueueKeyWait(ctx, evt, true, store)
}

// enqueueKeyWait queues evt behind its room's wait, starting one if start
// is set and the room has none, and reports whether it queued it.
func (c *Connector) enqueueKeyWait(ctx context.Context, evt *event.Event, start, store bool) bool {
	c.keys.mu.Lock()
	r := c.keys.rooms[evt.RoomID]
	started := false
	if r == nil && start {
		if c.keys.rooms == nil {
			c.keys.rooms = map[id.RoomID]*keyRoom{}
		}
		r = &keyRoom{}
		c.keys.rooms[evt.RoomID] = r
		c.keys.running.Add(1)
		started = true
	}
	if r != nil {
		r.queue = append(r.queue, evt)
	}
	c.keys.mu.Unlock()
	if r == nil {
		return false
	}
	if store {
		c.notePending(ctx, evt)
	}
	if started {
		zerolog.Ctx(ctx).Debug().Stringer("event_id", evt.ID).Stringer("room_id", evt.RoomID).
			Msg("Waiting for the room key of an event beside the transaction")
		go c.runKeyRoom(evt.RoomID, r)
	}
	return true
}

func (c *Connector) notePending(ctx context.Context, evt *event.Event) {
	if c.keys.store == nil || evt.ID == "" {
		return
	}
	if err := c.keys.store.AddPending(ctx, evt.RoomID, evt.ID); err != nil {
		zerolog.Ctx(ctx).Error().Err(err).Stringer("event_id", evt.ID).Msg("Failed to note an event that waits for its room key")
	}
}

// runKeyRoom hands a room's waiting events on in order, each once it is
// decrypted (or found undecryptable) and delivered.
func (c *Connector) runKeyRoom(roomID id.RoomID, r *keyRoom) {
	defer c.keys.running.Done()
	ctx := c.log.With().Stringer("room_id", roomID).Logger().WithContext(c.keys.base())
	for {
		c.keys.mu.Lock()
		if len(r.queue) == 0 || ctx.Err() != nil {
			delete(c.keys.rooms, roomID)
			c.keys.mu.Unlock()
			return
		}
		evt := r.queue[0]
		r.queue = r.queue[1:]
		if r.window.IsZero() {
			r.window = time.Now().Add(keyWait)
		}
		wait := max(time.Until(r.window), 0)
		c.keys.mu.Unlock()
		if !c.handOn(ctx, evt, wait) {
			return // the bridge stops: the store keeps the rest
		}
		if c.keys.store != nil && evt.ID != "" {
			if err := c.keys.store.DeletePending(ctx, roomID, evt.ID); err != nil {
				zerolog.Ctx(ctx).Error().Err(err).Stringer("event_id", evt.ID).Msg("Failed to drop a handled event from those waiting for a room key")
			}
		}
	}
}

// base returns the context the waits run in.
func (k *keyWaits) base() context.Context {
	if k.ctx == nil {
		return context.Background()
	}
	return k.ctx
}

// handOn decrypts a waiting event, waiting for its key at most wait, and
// hands it to the handler as its own transaction, again until it is
// delivered. It returns false if the bridge stopped first.
func (c *Connector) handOn(ctx context.Context, evt *event.Event, wait time.Duration) bool {
	if c.decrypts() {
		decrypted, err := c.cryptoEvent(ctx, evt, wait)
		if err != nil {
			if ctx.Err() != nil {
				return false
			}
			c.undecryptable(ctx, evt, err)
			return true
		}
		evt = decrypted
	}
	log := zerolog.Ctx(ctx).With().Stringer("event_id", evt.ID).Logger()
	return c.handUntilDelivered(log.WithContext(ctx), nil, "An event that waited for its room key was", func(ctx context.Context) {
		c.handler.HandleMatrixEvent(ctx, evt)
	})
}

// ResumeKeyWaits fetches the events that waited for a room key when the
// bridge stopped, and queues them again in their rooms. Call it before
// AcceptTransactions, so that new events of those rooms queue behind them.
func (c *Connector) ResumeKeyWaits(ctx context.Context) error {
	if c.keys.store == nil {
		return nil
	}
	pending, err := c.keys.store.Pending(ctx)
	if err != nil {
		return fmt.Errorf("failed to read the events that wait for a room key: %w", err)
	}
	for _, p := range pending {
		evt, err := c.GetEvent(ctx, p.RoomID, p.EventID)
		if err != nil {
			c.log.Warn().Err(err).Stringer("event_id", p.EventID).Stringer("room_id", p.RoomID).
				Msg("An event that waited for its room key before the restart cannot be fetched; it is not bridged")
			// Gone or no longer readable for the bot: nothing to wait for.
			// Anything else (the homeserver is down) is tried at the next start.
			if errors.Is(err, mautrix.MNotFound) || errors.Is(err, mautrix.MForbidden) {
				_ = c.keys.store.DeletePending(ctx, p.RoomID, p.EventID)
			}
			continue
		}
		evt.RoomID = p.RoomID
		evt.Mautrix.EventSource = event.SourceTimeline
		if evt.StateKey != nil {
			evt.Type.Class = event.StateEventType
		}
		c.waitForKey(ctx, evt, false)
	}
	if len(pending) > 0 {
		c.log.Info().Int("events", len(pending)).Msg("Waiting again for the room keys of events from before the restart")
	}
	return nil
}

// StopDeliveries waits, once the context of Start has ended, for the rooms'
// key waits and for the redeliveries of events from the sync fallback and
// catch-ups to end.
func (c *Connector) StopDeliveries() {
	c.keys.running.Wait()
	c.redelivering.Wait()
}

// undecryptable reports an event the bridge could not decrypt: a log line,
// and a notice in the room so that its sender knows it did not reach XMPP,
// at most one per room per undecryptableNoticeEvery. Never a silent drop.
func (c *Connector) undecryptable(ctx context.Context, evt *event.Event, err error) {
	zerolog.Ctx(ctx).Warn().Err(err).Stringer("event_id", evt.ID).Stringer("room_id", evt.RoomID).Stringer("sender", evt.Sender).
		Msg("Could not decrypt an event; it is not bridged")
	if c.IsBridgeUser(evt.Sender) {
		return
	}
	now := time.Now()
	c.keys.mu.Lock()
	if c.keys.noticed == nil {
		c.keys.noticed = map[id.RoomID]time.Time{}
	}
	last, seen := c.keys.noticed[evt.RoomID]
	quiet := seen && now.Sub(last) < undecryptableNoticeEvery
	if !quiet {
		c.keys.noticed[evt.RoomID] = now
	}
	for room, at := range c.keys.noticed {
		if now.Sub(at) >= undecryptableNoticeEvery {
			delete(c.keys.noticed, room)
		}
	}
	c.keys.mu.Unlock()
	if quiet {
		return
	}
	go func() {
		nctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		text := fmt.Sprintf("The bridge could not decrypt a message from %s, so it did not reach XMPP users. "+
			"Others it cannot decrypt in this room within a minute are not announced one by one.", evt.Sender)
		if _, err := c.SendNotice(nctx, evt.RoomID, text, evt.ID); err != nil {
			zerolog.Ctx(ctx).Warn().Err(err).Msg("Failed to report an undecryptable event")
		}
	}()
}

// errNoKeyYet: the event's room key has not reached the bridge's device.
var errNoKeyYet = errors.New("the room key has not arrived yet")

// decrypts reports whether events go through the bridge's device.
func (c *Connector) decrypts() bool { return c.crypto != nil || c.decryptHook != nil }

// cryptoEvent runs an event through the bridge's device: see
// Crypto.handleCryptoEvent. Tests put a decryptHook in its place.
func (c *Connector) cryptoEvent(ctx context.Context, evt *event.Event, wait time.Duration) (*event.Event, error) {
	if c.decryptHook != nil {
		return c.decryptHook(ctx, evt, wait)
	}
	return c.crypto.handleCryptoEvent(ctx, evt, wait)
}
