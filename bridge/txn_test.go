package bridge

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"github.com/mxpp/mxpp/database"
	"github.com/mxpp/mxpp/matrix"
	"github.com/mxpp/mxpp/portal"
	"github.com/mxpp/mxpp/xmpp"
)

// stuckHS is a homeserver whose room state can be read only once released,
// and then not at all.
type stuckHS struct {
	portal.MatrixAPI
	release chan struct{}
}

func (h stuckHS) RoomInfo(ctx context.Context, _ id.RoomID) (*matrix.RoomInfo, error) {
	select {
	case <-h.release:
	case <-ctx.Done():
	}
	return nil, errors.New("room state unavailable")
}

// enteringHS says when the portal started to read the room's state.
type enteringHS struct {
	stuckHS
	entered chan struct{}
}

func (h enteringHS) RoomInfo(ctx context.Context, room id.RoomID) (*matrix.RoomInfo, error) {
	select {
	case h.entered <- struct{}{}:
	default:
	}
	return h.stuckHS.RoomInfo(ctx, room)
}

func testBridgePortal(t *testing.T, hs portal.MatrixAPI) (*Bridge, *portal.Portal) {
	t.Helper()
	row := &database.Portal{RoomID: "!r:hs.test", Alias: "#r:hs.test"}
	p, err := portal.New(row, &portal.Deps{Matrix: hs, Log: zerolog.Nop(), Scheme: xmpp.Scheme{Domain: jid.MustParse("matrix.xmpp.test")}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	p.Start(ctx)
	cfg := DefaultConfig()
	b := &Bridge{Config: &cfg, Log: zerolog.Nop(), events: newEventFilter(SyncOff), byRoom: map[id.RoomID]roomPortal{row.RoomID: p},
		ctx: ctx, cancel: cancel, auditCloser: io.NopCloser(nil)}
	return b, p
}

// deliver hands an event to the bridge in a transaction of its own and
// returns what answering the transaction within wait would say.
func deliver(b *Bridge, evt *event.Event, wait time.Duration) error {
	txn := &matrix.Txn{}
	b.HandleMatrixEvent(matrix.WithTxn(context.Background(), txn), evt)
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	return txn.Finish(ctx)
}

func topicEvent() *event.Event {
	key := ""
	return &event.Event{ID: "$topic", RoomID: "!r:hs.test", Sender: "@mary:hs.test", Type: event.StateTopic, StateKey: &key,
		Content: event.Content{Parsed: &event.TopicEventContent{Topic: "new"}}}
}

// TestRetriedTransactionWaits: a homeserver retries a transaction that
// timed out while its event still waits in the portal. The retry must not
// be answered before the event is delivered; and an event the portal
// could not handle fails the transaction, so that it comes again.
func TestRetriedTransactionWaits(t *testing.T) {
	hs := stuckHS{release: make(chan struct{})}
	b, _ := testBridgePortal(t, hs)
	evt := topicEvent()
	if err := deliver(b, evt, 100*time.Millisecond); err == nil {
		t.Fatal("the first transaction was answered while its event waits")
	}
	if err := deliver(b, evt, 100*time.Millisecond); err == nil {
		t.Fatal("the retried transaction was answered while its event still waits")
	}
	close(hs.release)
	// Now the portal gets to it, but cannot read the room: not delivered.
	if err := deliver(b, evt, 5*time.Second); err == nil {
		t.Fatal("the transaction of an event the portal could not handle was answered as done")
	}
	// Forgotten, the event is taken again by the next retry.
	if err := deliver(b, evt, 5*time.Second); err == nil {
		t.Fatal("the retry of an undelivered event was answered as done")
	}
}

// TestEndedPortalFailsTransaction: an event for a portal that has ended is
// not taken, and its transaction fails rather than being answered as done.
func TestEndedPortalFailsTransaction(t *testing.T) {
	b, p := testBridgePortal(t, stuckHS{release: make(chan struct{})})
	p.Stop()
	if err := deliver(b, topicEvent(), 5*time.Second); err == nil {
		t.Fatal("an event for an ended portal was answered as done")
	}
}

// TestStopCancelsBusyPortals: shutdown gives the portals a while to
// finish what they hold, then cancels what they are still doing, for all
// rooms at once: a room stuck on the homeserver does not hold it up for the
// event's whole timeout (2 minutes).
func TestStopCancelsBusyPortals(t *testing.T) {
	defer func(d time.Duration) { shutdownDrain = d }(shutdownDrain)
	shutdownDrain = 200 * time.Millisecond
	hs := enteringHS{stuckHS{release: make(chan struct{})}, make(chan struct{}, 1)}
	b, _ := testBridgePortal(t, hs)
	go deliver(b, topicEvent(), time.Minute)
	<-hs.entered // the portal is stuck on it
	stopped := make(chan struct{})
	go func() { b.Stop(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(30 * time.Second):
		t.Fatal("Stop still waits for a stuck portal after 30 s")
	}
}

// TestLookupBounds: room lookups, which anyone on an allowed domain starts
// by joining a room name, are bounded: so many at once, so many stanzas
// waiting for each; the rest are refused at once (resource-constraint).
func TestLookupBounds(t *testing.T) {
	comp, err := xmpp.NewComponent(xmpp.Config{Server: "127.0.0.1:1", Domain: "matrix.xmpp.test", Secret: "s"}, nil, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	b := &Bridge{Log: zerolog.Nop(), XMPP: comp, ctx: ctx, cancel: cancel, pending: map[string]*lookup{}}
	release := make(chan struct{})
	var created atomic.Int32
	create := func(context.Context) (*portal.Portal, *stanza.Error) {
		created.Add(1)
		<-release
		return nil, xmpp.StanzaError(stanza.ItemNotFound, "")
	}
	join := func(room string) *xmpp.Presence {
		return &xmpp.Presence{From: xmpp.A(jid.MustParse("eve@xmpp.test/r")), To: xmpp.A(jid.MustParse(room + "@matrix.xmpp.test/Eve"))}
	}
	for range maxLookupWaiting + 10 {
		b.lookup("a", join("a"), create)
	}
	for i := range maxLookups + 5 {
		b.lookup(fmt.Sprint("r", i), join(fmt.Sprint("r", i)), create)
	}
	b.mu.Lock()
	lookups, waiting := len(b.pending), len(b.pending["a"].waiting)
	b.mu.Unlock()
	if lookups != maxLookups || waiting != maxLookupWaiting {
		t.Errorf("%d lookups under way, %d stanzas waiting for one; want %d and %d", lookups, waiting, maxLookups, maxLookupWaiting)
	}
	close(release)
	waitUntil(t, func() bool { b.mu.Lock(); defer b.mu.Unlock(); return len(b.pending) == 0 })
	if n := created.Load(); n != maxLookups {
		t.Errorf("%d lookups ran; want %d", n, maxLookups)
	}
}

func waitUntil(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("timed out")
		}
	}
}
