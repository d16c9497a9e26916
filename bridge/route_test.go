package bridge

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
	"mellium.im/xmpp/jid"

	"github.com/mxpp/mxpp/database"
	"github.com/mxpp/mxpp/matrix"
	"github.com/mxpp/mxpp/ratelimit"
	"github.com/mxpp/mxpp/xmpp"
)

// routeBridge is a bridge whose homeserver knows no room at all and counts
// the requests it gets; its XMPP component is not connected, so answers go
// nowhere.
type routeBridge struct {
	*Bridge
	requests atomic.Int32

	pathsMu sync.Mutex
	paths   []string // method and path of each homeserver request
}

// requested reports whether the homeserver got a request whose method and
// path contain want.
func (rb *routeBridge) requested(want string) bool {
	rb.pathsMu.Lock()
	defer rb.pathsMu.Unlock()
	for _, p := range rb.paths {
		if strings.Contains(p, want) {
			return true
		}
	}
	return false
}

func newRouteBridge(t *testing.T, configure ...func(*Config)) *routeBridge {
	t.Helper()
	rb := &routeBridge{}
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rb.requests.Add(1)
		rb.pathsMu.Lock()
		rb.paths = append(rb.paths, r.Method+" "+r.URL.Path)
		rb.pathsMu.Unlock()
		if strings.HasSuffix(r.URL.Path, "/register") {
			_, _ = w.Write([]byte(`{"user_id":"@xmppbot:hs.test"}`))
			return
		}
		if strings.HasSuffix(r.URL.Path, "/join") || strings.Contains(r.URL.Path, "/join/") {
			_, _ = w.Write([]byte(`{"room_id":"!r:hs.test"}`))
			return
		}
		if strings.HasSuffix(r.URL.Path, "/user_directory/search") {
			_, _ = w.Write([]byte(`{"limited":false,"results":[{"user_id":"@mary:hs.test","display_name":"Mary Q"},` +
				`{"user_id":"@_xmpp_alice=40xmpp.test:hs.test","display_name":"alice"},{"user_id":"@mary:other.test"},` +
				`{"user_id":"@muted:hs.test","display_name":"Muted"}]}`))
			return
		}
		if strings.Contains(r.URL.Path, "/profile/@mary") {
			_, _ = w.Write([]byte(`{"displayname":"Mary"}`))
			return
		}
		if strings.Contains(r.URL.Path, "/publicRooms") {
			_, _ = w.Write([]byte(`{"chunk":[]}`))
			return
		}
		w.WriteHeader(http.StatusNotFound)
		_, _ = w.Write([]byte(`{"errcode":"M_NOT_FOUND","error":"not found"}`))
	}))
	t.Cleanup(hs.Close)
	cfg := DefaultConfig()
	cfg.Homeserver.Address, cfg.Homeserver.Domain = hs.URL, "hs.test"
	cfg.Appservice.ASToken, cfg.Appservice.HSToken = "as", "hs"
	cfg.XMPP = xmpp.Config{Server: "127.0.0.1:1", Domain: "matrix.xmpp.test", Secret: "s"}
	for _, f := range configure {
		f(&cfg)
	}
	b, err := New(&cfg, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	b.ctx, b.cancel = context.WithCancel(context.Background())
	t.Cleanup(b.cancel)
	if b.DB, err = database.Open(b.ctx, database.Config{URI: "file:" + filepath.Join(t.TempDir(), "b.db")}, zerolog.Nop()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.DB.Close() })
	if b.Matrix, err = matrix.NewConnector(cfg.MatrixConfig(), nil, b, zerolog.Nop()); err != nil {
		t.Fatal(err)
	}
	rb.Bridge = b
	return rb
}

// join sends a join of from to a room name and waits until its lookup, if
// it started one, is over.
func (rb *routeBridge) join(t *testing.T, from, room string) {
	t.Helper()
	to := jid.MustParse("#" + room + "#hs.test@matrix.xmpp.test/Nick")
	f := jid.MustParse(from)
	rb.route(rb.ctx, &xmpp.Presence{From: xmpp.A(f), To: xmpp.A(to), MUC: &xmpp.MUCJoin{}}, to, f)
	waitUntil(t, func() bool { rb.mu.Lock(); defer rb.mu.Unlock(); return len(rb.pending) == 0 })
}

// TestRouteRemembersMisses: a room name that was looked up and not found
// is not looked up again for a while, whoever asks; one a room admin
// exposes meanwhile is.
func TestRouteRemembersMisses(t *testing.T) {
	rb := newRouteBridge(t)
	rb.join(t, "eve@xmpp.test/r", "nosuch")
	first := rb.requests.Load()
	if first == 0 {
		t.Fatal("the first join to an unknown room asked the homeserver nothing")
	}
	rb.join(t, "eve@xmpp.test/r", "nosuch")
	rb.join(t, "mallory@xmpp.test/r", "nosuch")
	if n := rb.requests.Load(); n != first {
		t.Errorf("joining the missing room again made %d more homeserver requests; want none", n-first)
	}
	rb.misses.forget("#nosuch#hs.test")
	rb.join(t, "eve@xmpp.test/r", "nosuch")
	if rb.requests.Load() == first {
		t.Error("a room name dropped from the misses was not looked up again")
	}
}

// TestRouteDomainLookups: fresh JIDs of one domain share that domain's
// lookups: beyond its burst, joins of unknown rooms are refused without a
// homeserver request, while another domain still gets through.
func TestRouteDomainLookups(t *testing.T) {
	rb := newRouteBridge(t)
	// The domain's bucket, small and not refilling while the test runs.
	const burst = 5
	rb.domainLookups = ratelimit.New(time.Hour, burst)
	for i := range burst {
		rb.join(t, fmt.Sprintf("u%d@flood.test/r", i), fmt.Sprintf("room%d", i))
	}
	before := rb.requests.Load()
	for i := range 20 {
		rb.join(t, fmt.Sprintf("fresh%d@flood.test/r", i), fmt.Sprintf("other%d", i))
	}
	if n := rb.requests.Load(); n != before {
		t.Errorf("fresh JIDs of a domain past its burst made %d homeserver requests; want none", n-before)
	}
	rb.join(t, "alice@elsewhere.test/r", "another")
	if rb.requests.Load() == before {
		t.Error("another domain's join was refused with the flooding domain's")
	}
}

// TestUnbridgedInvitations: in a room that is not bridged, the bot accepts
// an invitation from a user who may use the bridge, and nobody else's;
// other member events, and invitations sent by the bridge's own users, are
// not acted on.
func TestUnbridgedInvitations(t *testing.T) {
	rb := newRouteBridge(t)
	rb.Config.Bridge.Permissions = map[string]string{"*": LevelNone, "hs.test": LevelUser}
	bot := rb.Matrix.BotID().String()
	member := func(room, sender, target string, membership event.Membership) *event.Event {
		return &event.Event{Type: event.StateMember, RoomID: id.RoomID(room), Sender: id.UserID(sender), StateKey: &target, ID: "$m",
			Content: event.Content{Parsed: &event.MemberEventContent{Membership: membership}}}
	}
	joined := func(room string) bool { return rb.requested("/rooms/"+room+"/join") || rb.requested("/join/"+room) }
	ctx := rb.ctx
	rb.handleUnbridgedEvent(ctx, member("!stranger:hs.test", "@eve:elsewhere.test", bot, event.MembershipInvite))
	rb.handleUnbridgedEvent(ctx, member("!leave:hs.test", "@mary:hs.test", bot, event.MembershipLeave))
	rb.handleUnbridgedEvent(ctx, member("!own:hs.test", "@_xmpp_alice=40xmpp.test:hs.test", bot, event.MembershipInvite))
	rb.handleUnbridgedEvent(ctx, member("!ok:hs.test", "@mary:hs.test", bot, event.MembershipInvite))
	waitUntil(t, func() bool { return joined("!ok:hs.test") })
	for _, room := range []string{"!stranger:hs.test", "!leave:hs.test", "!own:hs.test"} {
		if joined(room) {
			t.Errorf("the bot joined %s", room)
		}
	}
}
