package matrix

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/rs/zerolog"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
)

// SyncStore keeps the bot's sync position across restarts.
type SyncStore interface {
	LoadNextBatch(ctx context.Context) (string, error)
	SaveNextBatch(ctx context.Context, token string) error
}

// syncFilter asks only for what homeservers may not push to appservices:
// redactions in the timeline, typing, receipts and presence.
var syncFilter = &mautrix.Filter{
	AccountData: &mautrix.FilterPart{NotTypes: []event.Type{{Type: "*"}}},
	Presence:    &mautrix.FilterPart{Types: []event.Type{event.EphemeralEventPresence}},
	Room: &mautrix.RoomFilter{
		AccountData: &mautrix.FilterPart{NotTypes: []event.Type{{Type: "*"}}},
		State:       &mautrix.FilterPart{NotTypes: []event.Type{{Type: "*"}}},
		Timeline:    &mautrix.FilterPart{Types: []event.Type{event.EventRedaction}, Limit: 50},
		Ephemeral:   &mautrix.FilterPart{Types: []event.Type{event.EphemeralEventTyping, event.EphemeralEventReceipt}},
	},
}

// noRoomsFilter asks for nothing of rooms: the encryption device's sync is
// for to-device messages (room keys), device lists and key counts, which
// come whatever the filter, and a sync without rooms still notices an
// outage of the homeserver. mautrix's Filter cannot say it (an empty
// "rooms" list, the spec's way of leaving every room out, is omitted when
// empty, and a filter without one includes every room), so it is spelt
// out here.
var noRoomsFilter = map[string]any{
	"account_data": map[string]any{"not_types": []string{"*"}},
	"presence":     map[string]any{"not_types": []string{"*"}},
	"room":         map[string]any{"rooms": []string{}},
}

// FromSync reports whether an event came from the bot's sync rather than an
// appservice transaction.
func FromSync(evt *event.Event) bool { return evt.Mautrix.EventSource&event.SourceJoin != 0 }

// RunSync runs the bridge bot's /sync loop until ctx ends. While rooms
// reports true, it hands room events and ephemeral events to the handler
// like pushed ones, marked with FromSync: the fallback for homeservers that
// do not push redactions, typing or receipts to appservices (Dendrite
// v0.13). Once it reports false (the homeserver was seen pushing them
// itself), the loop syncs without rooms: a bot in thousands of rooms costs
// a homeserver much for each sync that reads them (docs/scaling.md), and
// what is left still notices an outage of the homeserver. With
// encryption on, the loop runs as the bot's device and also feeds the
// device what only /sync brings on homeservers without the appservice
// encryption extensions (MSC2409/MSC3202): room keys, device-list changes,
// one-time key counts. The first sync only takes a position, so that old
// room events are not replayed.
func (c *Connector) RunSync(ctx context.Context, store SyncStore, rooms func() bool) {
	log := c.log.With().Str("loop", "sync").Logger()
	client := c.Bot().Client
	if c.crypto != nil {
		client = c.crypto.client
	}
	ctx = log.WithContext(ctx)
	var filterID string
	syncingRooms := rooms()
	since, err := store.LoadNextBatch(ctx)
	if err != nil {
		log.Warn().Err(err).Msg("Failed to load the sync position; starting afresh")
	}
	backoff := time.Second
	var down time.Time // when syncs began to fail
	for ctx.Err() == nil {
		if syncingRooms && !rooms() {
			log.Info().Msg("The homeserver pushes what the bot's sync was for; syncing without rooms from now on")
			syncingRooms, filterID = false, ""
		}
		if filterID == "" {
			var filter any = syncFilter
			if !syncingRooms {
				filter = noRoomsFilter
			}
			var resp *mautrix.RespCreateFilter
			_, err := client.MakeRequest(ctx, http.MethodPost, client.BuildClientURL("v3", "user", client.UserID, "filter"), filter, &resp)
			if err == nil {
				filterID = resp.FilterID
			} else if ctx.Err() == nil {
				log.Warn().Err(err).Msg("Failed to create the sync filter")
				sleep(ctx, backoff)
				backoff = min(backoff*2, 30*time.Second)
				continue
			}
		}
		asked := time.Now()
		busy := c.busy()
		req := mautrix.ReqSync{Since: since, FilterID: filterID, SetPresence: event.PresenceOffline}
		reqCtx, cancel := ctx, context.CancelFunc(func() {})
		if !busy {
			req.Timeout = 30000
			reqCtx, cancel = context.WithCancel(ctx)
			// Cutting it short is routine: not worth the client's warning.
			reqCtx = log.Level(zerolog.ErrorLevel).WithContext(reqCtx)
			c.longPoll.Store(&cancel)
			if c.busy() { // a transaction came in between
				cancel()
			}
		}
		resp, err := client.FullSyncRequest(reqCtx, req)
		c.longPoll.Store(nil)
		cutShort := reqCtx.Err() != nil
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			if cutShort {
				continue // traffic began: poll at the pace instead
			}
			if down.IsZero() {
				down = time.Now()
			}
			log.Warn().Err(err).Stringer("retry_in", backoff).Msg("Sync failed")
			if errors.Is(err, mautrix.MUnknownToken) || errors.Is(err, mautrix.MNotFound) {
				filterID = ""
			}
			sleep(ctx, backoff)
			backoff = min(backoff*2, 30*time.Second)
			continue
		}
		backoff = time.Second
		if !down.IsZero() {
			// Back after an outage: what the homeserver did not push
			// meanwhile is read from the rooms (catchup.go).
			go c.catchUp(ctx, down.Add(-catchUpMargin))
			down = time.Time{}
		}
		if c.crypto != nil {
			c.crypto.mach.ProcessSyncResponse(ctx, resp, since)
		}
		if syncingRooms && since != "" {
			c.dispatchSync(ctx, resp)
		}
		since = resp.NextBatch
		if err = store.SaveNextBatch(ctx, since); err != nil {
			log.Warn().Err(err).Msg("Failed to save the sync position")
		}
		if busy {
			took := time.Since(asked)
			sleep(ctx, max(SyncPace-took, min(syncPauseFactor*took, time.Minute)))
		}
	}
}

// While the homeserver pushes transactions, the bot's /sync polls every
// SyncPace instead of long-polling. A homeserver works out the waiting
// sync's response anew at every event in the bot's rooms, even when the
// filter leaves nothing to send; under load that cost Dendrite a fifth to
// a third of its throughput in the benchmark. Polling does that work at
// most once per SyncPace, and what only /sync brings (redactions, typing
// and receipts on some homeservers, room keys) is at most that much later.
// Once no transaction came for syncBusyFor, the long poll resumes.
//
// A poll that took long is followed by a pause of syncPauseFactor times
// as long (at most a minute), so that the bot's syncs take at most a fifth
// of the homeserver's time however costly they are (with the bot in 10,000
// rooms Dendrite took 1.5 s and more for one). That bounds their share; it
// did not give the bridged paths at size their throughput back, nor did a
// longer pause: on Dendrite over SQLite a sync seems to hold the
// homeserver's writers off for as long as it reads (docs/scaling.md).
const syncPauseFactor = 4

var (
	SyncPace    = 500 * time.Millisecond
	syncBusyFor = 10 * time.Second
)

// busy reports whether a transaction came recently.
func (c *Connector) busy() bool {
	return time.Since(time.Unix(0, c.lastPush.Load())) < syncBusyFor
}

// pushed notes a transaction, and cuts the bot's long poll short so that
// the sync loop goes over to polling.
func (c *Connector) pushed() {
	c.lastPush.Store(time.Now().UnixNano())
	if cancel := c.longPoll.Swap(nil); cancel != nil {
		(*cancel)()
	}
}

// dispatchSync hands a sync response's room events to the handler. Its
// timeline events are like a transaction's: if they do not all reach XMPP
// (the component link is down), they are handed again until they do,
// beside the sync loop, which goes on (it also brings room keys). Typing
// and receipts are handed once: they are out of date by a retry.
func (c *Connector) dispatchSync(ctx context.Context, resp *mautrix.RespSync) {
	for _, evt := range resp.Presence.Events {
		evt.Mautrix.EventSource = event.SourceJoin | event.SourcePresence
		evt.Type.Class, evt.ID = event.EphemeralEventType, ""
		c.handleEvent(ctx, evt)
	}
	var timeline []*event.Event
	for roomID, room := range resp.Rooms.Join {
		for _, evt := range room.Timeline.Events {
			evt.RoomID, evt.Mautrix.EventSource = roomID, event.SourceJoin|event.SourceTimeline
			timeline = append(timeline, evt)
		}
		for _, evt := range room.Ephemeral.Events {
			evt.RoomID, evt.Mautrix.EventSource = roomID, event.SourceJoin|event.SourceEphemeral
			evt.Type.Class, evt.ID = event.EphemeralEventType, ""
			c.handleEvent(ctx, evt)
		}
	}
	if len(timeline) == 0 {
		return
	}
	hand := func(ctx context.Context) {
		for _, evt := range timeline {
			c.handleEvent(ctx, evt)
		}
	}
	txn := &Txn{}
	hand(WithTxn(ctx, txn))
	c.redeliver(ctx, txn, "Events from the sync fallback were", hand, nil)
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-time.After(d):
	case <-ctx.Done():
	}
}
