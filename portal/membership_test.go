package portal

import (
	"context"
	"testing"
	"time"

	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"github.com/mxpp/mxpp/database"
	"github.com/mxpp/mxpp/xmpp"
)

// churnHS counts the membership and display-name events a portal writes.
type churnHS struct {
	fakeMatrix
	joins, leaves, renames int
}

func (h *churnHS) JoinPuppet(context.Context, id.RoomID, id.UserID, string) error {
	h.joins++
	return nil
}

func (h *churnHS) LeavePuppet(context.Context, id.RoomID, id.UserID, string) error {
	h.leaves++
	return nil
}

func (h *churnHS) SetPuppetRoomName(context.Context, id.RoomID, id.UserID, string) error {
	h.renames++
	return nil
}

func (h *churnHS) IsBridgeUser(u id.UserID) bool { _, ok := h.ParsePuppetID(u); return ok }

// TestJoinChurn: an XMPP user who joins and leaves over and over, or
// changes nick over and over, writes a Matrix event each time only up to
// a burst; beyond, the join or nick change is refused with
// resource-constraint and nothing is written.
func TestJoinChurn(t *testing.T) {
	ctx := context.Background()
	p := testPortal()
	hs, out := &churnHS{}, &stanzaRecorder{}
	p.deps.Matrix, p.deps.XMPP, p.deps.DB = hs, out, openTestDB(t)
	if err := p.deps.DB.Portal.Insert(ctx, p.Portal); err != nil {
		t.Fatal(err)
	}
	p.info.JoinRule = event.JoinRulePublic
	p.settings = &database.RoomSettings{RoomID: p.RoomID}
	p.typing, p.lastRead = map[id.UserID]bool{}, map[id.UserID]id.EventID{}
	p.loaded = true
	eve := jid.MustParse("eve@xmpp.test/r")
	room := func(nick string) xmpp.Addr { j, _ := p.roomJID.WithResource(nick); return xmpp.A(j) }
	join := func(nick string) {
		p.HandleEvent(ctx, &xmpp.Presence{From: xmpp.A(eve), To: room(nick), MUC: &xmpp.MUCJoin{}})
	}
	leave := func(nick string) {
		p.HandleEvent(ctx, &xmpp.Presence{Type: xmpp.TypeUnavailable, From: xmpp.A(eve), To: room(nick)})
	}
	refused := func() bool {
		for _, st := range out.out {
			if pr, ok := st.(*xmpp.Presence); ok && pr.Type == xmpp.TypeError && pr.Error != nil && pr.Error.Condition == stanza.ResourceConstraint {
				return true
			}
		}
		return false
	}
	for range churnBurst {
		join("Eve")
		leave("Eve")
	}
	if hs.joins != churnBurst || hs.leaves != churnBurst || refused() {
		t.Fatalf("%d joins within the burst wrote %d joins (refused: %v)", churnBurst, hs.joins, refused())
	}
	join("Eve")
	if hs.joins != churnBurst || !refused() {
		t.Errorf("a join past the burst wrote a membership event (%d) or was not refused (%v)", hs.joins, refused())
	}

	// Nick changes: another user, the same bound.
	p.churn = nil // a fresh limit
	out.out = nil
	join("Eve")
	for i := range churnBurst + 2 {
		join(string(rune('A' + i)))
	}
	if hs.renames != churnBurst-1 || !refused() {
		t.Errorf("%d nick changes wrote %d renames (refused: %v); want %d and a refusal", churnBurst+2, hs.renames, refused(), churnBurst-1)
	}
}

// TestAliasMove: a new canonical alias moves the running portal to the new
// MUC address: its occupants are told where to (a destroy with the new
// venue), the bridge is told to file it there, and the portal goes on, so
// that nothing queued behind the change is dropped.
func TestAliasMove(t *testing.T) {
	ctx := context.Background()
	p := testPortal()
	hs, out := &churnHS{}, &stanzaRecorder{}
	p.deps.Matrix, p.deps.XMPP, p.deps.DB, p.deps.HomeserverDomain = hs, out, openTestDB(t), "hs.test"
	p.MUCLocal = p.roomJID.Localpart()
	if err := p.deps.DB.Portal.Insert(ctx, p.Portal); err != nil {
		t.Fatal(err)
	}
	p.settings = &database.RoomSettings{RoomID: p.RoomID}
	p.typing, p.lastRead = map[id.UserID]bool{}, map[id.UserID]id.EventID{}
	p.info.Invited, p.info.Banned = map[id.UserID]bool{}, map[id.UserID]bool{}
	p.loaded = true
	alice := p.occupants["alice@xmpp.test"]
	alice.sessions = []session{{jid: jid.MustParse("alice@xmpp.test/r")}}
	var moved string
	p.deps.OnMoved = func(_ *Portal, old string) { moved = old }
	key := ""
	alive := p.HandleEvent(ctx, &event.Event{Type: event.StateCanonicalAlias, StateKey: &key, RoomID: p.RoomID, Sender: "@mary:hs.test",
		Content: event.Content{Parsed: &event.CanonicalAliasEventContent{Alias: "#new:hs.test"}}})
	newJID := jid.MustParse("#new#hs.test@matrix.xmpp.test")
	if !alive {
		t.Fatal("the portal ended on an alias change")
	}
	if !p.roomJID.Equal(newJID) || moved != "#r#hs.test" || p.MUCLocal != newJID.Localpart() {
		t.Errorf("after the move: room %s, moved from %q, local %q", p.roomJID, moved, p.MUCLocal)
	}
	told := false
	for _, st := range out.out {
		if pr, ok := st.(*xmpp.Presence); ok && pr.MUCUser != nil && pr.MUCUser.Destroy != nil && pr.MUCUser.Destroy.JID.Equal(newJID) {
			told = true
		}
	}
	if !told {
		t.Errorf("the occupant was not told of the new address: %+v", out.out)
	}
	row, err := p.deps.DB.Portal.GetByRoomID(ctx, p.RoomID)
	if err != nil || row == nil || row.Alias != "#new:hs.test" {
		t.Errorf("stored portal %+v, %v", row, err)
	}
}

// pingRecorder answers no liveness ping.
type pingRecorder struct{ stanzaRecorder }

func (*pingRecorder) SendIQ(context.Context, *xmpp.IQ) (*xmpp.IQ, error) { return nil, xmpp.ErrNoReply }

// TestSessionLiveness: only sessions quiet for the check interval are
// pinged, one ping at a time; a session that misses maxPingMisses pings in
// a row is removed while the occupant's other session stays, a sign of life
// clears the count, and a gone last session takes the occupant out.
func TestSessionLiveness(t *testing.T) {
	ctx := context.Background()
	p := testPortal()
	hs, out := &churnHS{}, &pingRecorder{}
	p.deps.Matrix, p.deps.XMPP, p.deps.DB = hs, out, openTestDB(t)
	p.deps.OccupantCheckInterval = time.Minute
	if err := p.deps.DB.Portal.Insert(ctx, p.Portal); err != nil {
		t.Fatal(err)
	}
	// A loop that has ended: the pings' answers are not handled behind
	// the test's back, which hands them in itself.
	ended, cancel := context.WithCancel(ctx)
	cancel()
	p.Start(ended)
	p.loaded = true
	phone, laptop := jid.MustParse("alice@xmpp.test/phone"), jid.MustParse("alice@xmpp.test/laptop")
	alice := p.occupants["alice@xmpp.test"]
	alice.sessions = []session{{jid: phone, lastSeen: time.Now()}, {jid: laptop, lastSeen: time.Now().Add(-time.Hour)}}

	p.checkQuiet()
	if alice.find(phone).pinging || !alice.find(laptop).pinging {
		t.Fatalf("pinging phone %v, laptop %v; want only the quiet laptop", alice.find(phone).pinging, alice.find(laptop).pinging)
	}
	for i := range maxPingMisses {
		if alice.find(laptop) == nil {
			t.Fatalf("laptop removed after %d missed pings; want %d", i, maxPingMisses)
		}
		p.handlePingDone(ctx, pingDone{session: laptop, outcome: pingSilent})
	}
	if alice.find(laptop) != nil || alice.find(phone) == nil || p.occupants["alice@xmpp.test"] == nil {
		t.Fatalf("after %d missed pings: sessions %v", maxPingMisses, alice.jids())
	}

	p.handlePingDone(ctx, pingDone{session: phone, outcome: pingSilent})
	p.touch(phone)
	if s := alice.find(phone); s.misses != 0 || s.pinging {
		t.Errorf("after a sign of life: misses %d, pinging %v", s.misses, s.pinging)
	}
	p.handlePingDone(ctx, pingDone{session: phone, outcome: pingGone})
	if p.occupants["alice@xmpp.test"] != nil || hs.leaves != 1 {
		t.Errorf("the last session gone: occupant kept %v, puppet left %d times", p.occupants["alice@xmpp.test"] != nil, hs.leaves)
	}
}
