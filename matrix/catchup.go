package matrix

import (
	"context"
	"slices"
	"time"

	"github.com/rs/zerolog"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
)

// Catching up after a homeserver outage. A homeserver that stops or
// crashes may lose events on their way to the appservice: Dendrite stored a
// message in the room and never pushed it, neither before its restart nor
// after (seen in the fault tests). So when the bot's sync comes back after
// failing, the bridge reads the recent timeline of each bridged room and
// handles the messages, reactions and deletions of the outage (from a
// margin before it) that it has not seen. Handling is idempotent: events it
// saw are dropped by the bridge's duplicate filter, messages it bridged
// before a restart by the message map.

// catchUpMargin is how long before the first failed sync the catch-up
// starts: an event sent just before the homeserver went down is the one
// most likely lost.
const catchUpMargin = time.Minute

// catchUpPage bounds the events read per room.
const catchUpPage = 100

// SetCatchUpRooms tells the connector which rooms' events the bridge
// handles: those it reads again after a homeserver outage.
func (c *Connector) SetCatchUpRooms(rooms func() []id.RoomID) { c.catchUpRooms = rooms }

// catchUpTypes are the events a catch-up handles: what people say and do
// to messages. State lost on the way is read again from the room when it
// matters (portals load the room's state).
var catchUpTypes = []event.Type{event.EventMessage, event.EventEncrypted, event.EventReaction, event.EventRedaction}

// catchUp reads the recent timeline of every bridged room and handles the
// events since since that the bridge may have missed.
func (c *Connector) catchUp(ctx context.Context, since time.Time) {
	if c.catchUpRooms == nil {
		return
	}
	log := zerolog.Ctx(ctx)
	rooms := c.catchUpRooms()
	log.Info().Int("rooms", len(rooms)).Time("since", since).Msg("The homeserver is back; catching up with events it may not have pushed")
	for _, room := range rooms {
		if ctx.Err() != nil {
			return
		}
		c.catchUpRoom(ctx, room, since)
	}
}

func (c *Connector) catchUpRoom(ctx context.Context, room id.RoomID, since time.Time) {
	log := zerolog.Ctx(ctx).With().Stringer("room_id", room).Logger()
	filter := &mautrix.FilterPart{Types: catchUpTypes}
	resp, err := c.Bot().Messages(c.withoutBodyLogs(ctx), room, "", "", mautrix.DirectionBackward, filter, catchUpPage)
	if err != nil {
		log.Warn().Err(err).Msg("Failed to read a room's timeline to catch up")
		return
	}
	var evts []*event.Event
	for _, evt := range resp.Chunk {
		if time.UnixMilli(evt.Timestamp).Before(since) {
			break
		}
		if evt.StateKey != nil || c.IsBridgeUser(evt.Sender) || !slices.Contains(catchUpTypes, evt.Type) {
			continue
		}
		evts = append(evts, evt)
	}
	if len(evts) == 0 {
		return
	}
	slices.Reverse(evts)
	// In turn with the homeserver's transactions, like one of them.
	hand := func(ctx context.Context) {
		c.txnMu.Lock()
		defer c.txnMu.Unlock()
		for _, evt := range evts {
			evt.RoomID = room
			evt.Mautrix.EventSource = event.SourceTimeline
			c.handleEvent(ctx, evt)
		}
	}
	// One room's events that cannot be delivered yet are tried again
	// beside the catch-up of the others.
	ctx = log.WithContext(ctx)
	txn := &Txn{}
	hand(WithTxn(ctx, txn))
	c.redeliver(ctx, txn, "Events read again after a homeserver outage were", hand, func() {
		log.Debug().Int("events", len(evts)).Msg("Caught up with a room's recent events")
	})
}
