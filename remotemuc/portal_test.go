package remotemuc

import (
	"context"
	"encoding/xml"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"github.com/mxpp/mxpp/database"
	"github.com/mxpp/mxpp/matrix"
	"github.com/mxpp/mxpp/msgconv"
	"github.com/mxpp/mxpp/xmpp"
)

// fakeHS is a homeserver that records what the portal does on Matrix.
type fakeHS struct {
	matrix.Config
	calls []string
	sends []string // bodies of the messages sent, by sender
	info  *matrix.RoomInfo
}

func (f *fakeHS) note(format string, args ...any) {
	var b strings.Builder
	b.WriteString(format)
	for _, a := range args {
		b.WriteString(" ")
		switch v := a.(type) {
		case id.UserID:
			b.WriteString(v.String())
		case string:
			b.WriteString(v)
		}
	}
	f.calls = append(f.calls, b.String())
}

func (f *fakeHS) RoomInfo(context.Context, id.RoomID) (*matrix.RoomInfo, error) { return f.info, nil }
func (f *fakeHS) JoinPuppet(_ context.Context, _ id.RoomID, u id.UserID, name string) error {
	f.note("join", u, name)
	return nil
}
func (f *fakeHS) SetPuppetRoomName(_ context.Context, _ id.RoomID, u id.UserID, name string) error {
	f.note("rename", u, name)
	return nil
}
func (f *fakeHS) LeavePuppet(_ context.Context, _ id.RoomID, u id.UserID, _ string) error {
	f.note("leave", u)
	return nil
}
func (f *fakeHS) Kick(_ context.Context, _ id.RoomID, actor, target id.UserID, _ string) error {
	f.note("kick", actor, target)
	return nil
}
func (f *fakeHS) Ban(_ context.Context, _ id.RoomID, actor, target id.UserID, _ string) error {
	f.note("ban", actor, target)
	return nil
}
func (f *fakeHS) SetUserLevel(_ context.Context, _ id.RoomID, _, target id.UserID, _ int) error {
	f.note("level", target)
	return nil
}
func (f *fakeHS) SetTopic(_ context.Context, _ id.RoomID, _ id.UserID, topic string) error {
	f.note("topic", topic)
	return nil
}
func (f *fakeHS) GetEvent(context.Context, id.RoomID, id.EventID) (*event.Event, error) {
	return nil, context.Canceled
}
func (f *fakeHS) SendMessage(_ context.Context, _ id.RoomID, sender id.UserID, _ string, _ event.Type, content any, _ time.Time) (id.EventID, error) {
	body := ""
	if c, ok := content.(*event.MessageEventContent); ok {
		body = c.Body
	}
	f.sends = append(f.sends, sender.String()+": "+body)
	return id.EventID("$sent" + string(rune('a'+len(f.sends)))), nil
}
func (f *fakeHS) FindSent(context.Context, id.RoomID, id.UserID, string) id.EventID { return "" }
func (f *fakeHS) SendNotice(_ context.Context, _ id.RoomID, text string, _ id.EventID) (id.EventID, error) {
	f.note("notice", text)
	return "$notice", nil
}
func (f *fakeHS) UploadMedia(context.Context, id.UserID, []byte, string, string) (id.ContentURI, error) {
	return id.ContentURI{}, context.Canceled
}
func (f *fakeHS) Redact(context.Context, id.RoomID, id.UserID, id.EventID, string, string) error {
	return nil
}
func (f *fakeHS) SetTyping(context.Context, id.RoomID, id.UserID, bool) error      { return nil }
func (f *fakeHS) MarkRead(context.Context, id.RoomID, id.UserID, id.EventID) error { return nil }
func (f *fakeHS) IsEncrypted(context.Context, id.RoomID) bool                      { return false }

// fakeXMPP records the stanzas sent and answers disco#info with features.
type fakeXMPP struct {
	sent     []any
	features []string
	link     uint64 // the component stream; 1 unless a test breaks it

	mu  sync.Mutex
	mam []*xmpp.MAMQuery // archive queries, sent beside the loop
}

// mamQueries returns the archive queries sent so far.
func (f *fakeXMPP) mamQueries() []*xmpp.MAMQuery {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.mam)
}

func (f *fakeXMPP) Send(_ context.Context, v any) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.sent = append(f.sent, v)
	return nil
}

// messages returns the messages sent so far, for a test whose loop runs.
func (f *fakeXMPP) messages() []*xmpp.Message {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []*xmpp.Message
	for _, v := range f.sent {
		if m, ok := v.(*xmpp.Message); ok {
			out = append(out, m)
		}
	}
	return out
}
func (f *fakeXMPP) WaitConnected(context.Context) error { return nil }
func (f *fakeXMPP) Link() uint64                        { return max(f.link, 1) }
func (f *fakeXMPP) SendIQ(_ context.Context, iq *xmpp.IQ) (*xmpp.IQ, error) {
	if q, ok := iq.Body.(*xmpp.MAMQuery); ok {
		f.mu.Lock()
		f.mam = append(f.mam, q)
		f.mu.Unlock()
	}
	var b strings.Builder
	b.WriteString(`<iq type='result'><query xmlns='http://jabber.org/protocol/disco#info'><identity category='conference' type='text' name='Team'/>`)
	for _, f := range f.features {
		b.WriteString(`<feature var='` + f + `'/>`)
	}
	b.WriteString(`</query></iq>`)
	var reply xmpp.IQ
	if err := xml.Unmarshal([]byte(b.String()), &reply); err != nil {
		return nil, err
	}
	return &reply, nil
}

// presences returns the presences sent since from.
func (f *fakeXMPP) presences(from int) []*xmpp.Presence {
	var out []*xmpp.Presence
	for _, v := range f.sent[from:] {
		if p, ok := v.(*xmpp.Presence); ok {
			out = append(out, p)
		}
	}
	return out
}

var testRoom = jid.MustParse("team@conference.xmpp.test")

func newTestPortal(t *testing.T, db *database.Database, features ...string) (*Portal, *fakeHS, *fakeXMPP) {
	t.Helper()
	ctx := context.Background()
	cfg := matrix.Config{Homeserver: matrix.HomeserverConfig{Domain: "hs.test"}, Appservice: matrix.DefaultAppserviceConfig()}
	hs := &fakeHS{Config: cfg, info: &matrix.RoomInfo{Members: map[id.UserID]matrix.Member{},
		PowerLevels: &event.PowerLevelsEventContent{}}}
	x := &fakeXMPP{features: append([]string{xmpp.NSMUC}, features...)}
	row, err := db.Portal.GetByRemoteJID(ctx, testRoom.String())
	if err != nil {
		t.Fatal(err)
	}
	if row == nil {
		row = database.NewRemote("!portal:hs.test", "#_xmpp_team=40conference.xmpp.test:hs.test", testRoom.String())
		if err = db.Portal.Insert(ctx, row); err != nil {
			t.Fatal(err)
		}
		if err = db.RemoteRoom.SetPassword(ctx, row.RoomID, ""); err != nil {
			t.Fatal(err)
		}
	}
	p, err := New(row, Deps{Matrix: hs, XMPP: x, DB: db, Conv: &msgconv.Converter{},
		Scheme: xmpp.Scheme{Domain: jid.MustParse("matrix.xmpp.test")}, Log: zerolog.Nop(), Audit: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	return p, hs, x
}

func openTestDB(t *testing.T) *database.Database {
	t.Helper()
	db, err := database.Open(context.Background(), database.Config{URI: "file:" + filepath.Join(t.TempDir(), "test.db")}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

func memberEvent(user id.UserID, membership event.Membership, name string) *event.Event {
	return &event.Event{Type: event.StateMember, Sender: user, StateKey: new(user.String()), RoomID: "!portal:hs.test",
		Content: event.Content{Parsed: &event.MemberEventContent{Membership: membership, Displayname: name}}}
}

// fromRoom is a presence of the room to one of our occupants.
func fromRoom(nick string, to jid.JID, typ string, item xmpp.MUCItem, oid string, codes ...int) *xmpp.Presence {
	from, _ := testRoom.WithResource(nick)
	p := &xmpp.Presence{Type: typ, From: xmpp.A(from), To: xmpp.A(to),
		MUCUser: &xmpp.MUCUser{Items: []xmpp.MUCItem{item}, Status: xmpp.Statuses(codes...)}}
	if oid != "" {
		p.OccupantID = &xmpp.OccupantID{ID: oid}
	}
	return p
}

var (
	maryJID = jid.MustParse("mary#hs.test@matrix.xmpp.test/" + Resource)
	bobJID  = jid.MustParse("bob#hs.test@matrix.xmpp.test/" + Resource)
	part    = xmpp.MUCItem{Affiliation: xmpp.AffNone, Role: xmpp.RoleParticipant}
)

func calls(hs *fakeHS, prefix string) []string {
	var out []string
	for _, c := range hs.calls {
		if strings.HasPrefix(c, prefix) {
			out = append(out, c)
		}
	}
	return out
}

// TestPortalOccupants drives a portal through what a MUC sends: our
// occupants join; the others become puppets by the room's own scheme; a
// message sent to two of ours crosses once; a reflection of ours never
// does; a nick change renames the puppet; a kick kicks it.
func TestPortalOccupants(t *testing.T) {
	ctx := context.Background()
	db := openTestDB(t)
	p, hs, x := newTestPortal(t, db, xmpp.NSOccupantID, xmpp.NSStanzaID)
	p.HandleEvent(ctx, memberEvent("@mary:hs.test", event.MembershipJoin, "Mary"))
	if ps := x.presences(0); len(ps) != 1 || ps[0].To.String() != testRoom.String()+"/Mary" || !ps[0].From.Equal(maryJID) || ps[0].MUC == nil {
		t.Fatalf("Mary's join sent %+v", ps)
	}
	// The room lists Alice, then Mary herself.
	p.HandleEvent(ctx, fromRoom("Alice", maryJID, "", xmpp.MUCItem{Affiliation: xmpp.AffOwner, Role: xmpp.RoleModerator}, "alice-oid"))
	p.HandleEvent(ctx, fromRoom("Mary", maryJID, "", part, "mary-oid", xmpp.StatusSelf))
	alice := hs.RoomPuppetID(testRoom.String(), xmpp.OccupantToken("alice-oid", ""))
	if got := calls(hs, "join"); len(got) != 1 || got[0] != "join "+alice.String()+" Alice" {
		t.Fatalf("puppet joins: %q; want Alice's room puppet by her occupant-id", got)
	}
	if got := calls(hs, "level"); len(got) != 1 || got[0] != "level "+alice.String() {
		t.Errorf("levels set: %q; want Alice's (owner)", got)
	}

	// Bob joins; while he does, Mary sees his presence: it is ours, no puppet.
	p.HandleEvent(ctx, memberEvent("@bob:hs.test", event.MembershipJoin, "Bob"))
	p.HandleEvent(ctx, fromRoom("Bob", maryJID, "", part, "bob-oid"))
	p.HandleEvent(ctx, fromRoom("Alice", bobJID, "", xmpp.MUCItem{Affiliation: xmpp.AffOwner, Role: xmpp.RoleModerator}, "alice-oid"))
	p.HandleEvent(ctx, fromRoom("Mary", bobJID, "", part, "mary-oid"))
	p.HandleEvent(ctx, fromRoom("Bob", bobJID, "", part, "bob-oid", xmpp.StatusSelf))
	if got := calls(hs, "join"); len(got) != 1 {
		t.Fatalf("puppet joins after Bob came: %q; want only Alice's", got)
	}

	// A message to both of ours crosses once.
	from, _ := testRoom.WithResource("Alice")
	for _, to := range []jid.JID{maryJID, bobJID} {
		p.HandleEvent(ctx, &xmpp.Message{ID: "a1", Type: xmpp.TypeGroupchat, From: xmpp.A(from), To: xmpp.A(to), Body: "hello",
			StanzaID: &xmpp.StanzaID{ID: "sid-1", By: testRoom.String()}, OccupantID: &xmpp.OccupantID{ID: "alice-oid"}})
	}
	if len(hs.sends) != 1 || hs.sends[0] != alice.String()+": hello" {
		t.Fatalf("sent to Matrix: %q; want Alice's message once", hs.sends)
	}
	// Also without a stanza-id by the room (a forged one is not one): the
	// copy is known by nick and id.
	for _, to := range []jid.JID{maryJID, bobJID} {
		p.HandleEvent(ctx, &xmpp.Message{ID: "a2", Type: xmpp.TypeGroupchat, From: xmpp.A(from), To: xmpp.A(to), Body: "again",
			StanzaID: &xmpp.StanzaID{ID: "forged", By: "alice@xmpp.test"}})
	}
	// The same id again, to Mary: a new message that reuses it.
	p.HandleEvent(ctx, &xmpp.Message{ID: "a2", Type: xmpp.TypeGroupchat, From: xmpp.A(from), To: xmpp.A(maryJID), Body: "reused"})
	if len(hs.sends) != 3 || hs.sends[1] != alice.String()+": again" || hs.sends[2] != alice.String()+": reused" {
		t.Fatalf("sent to Matrix: %q; want each message once", hs.sends)
	}

	// Mary's message to the room comes back to both: a reflection.
	mark := len(x.sent)
	p.HandleEvent(ctx, &event.Event{ID: "$m1", Type: event.EventMessage, Sender: "@mary:hs.test", RoomID: p.RoomID,
		Content: event.Content{Parsed: &event.MessageEventContent{MsgType: event.MsgText, Body: "hi"}}})
	out, ok := x.sent[mark].(*xmpp.Message)
	if !ok || out.ID != "$m1" || out.OriginID == nil || out.OriginID.ID != "$m1" || !out.From.Equal(maryJID) {
		t.Fatalf("Mary's message went out as %+v", x.sent[mark:])
	}
	maryOcc, _ := testRoom.WithResource("Mary")
	for _, to := range []jid.JID{maryJID, bobJID} {
		p.HandleEvent(ctx, &xmpp.Message{ID: "$m1", Type: xmpp.TypeGroupchat, From: xmpp.A(maryOcc), To: xmpp.A(to), Body: "hi",
			OriginID: &xmpp.OriginID{ID: "$m1"}, StanzaID: &xmpp.StanzaID{ID: "sid-2", By: testRoom.String()}})
	}
	if len(hs.sends) != 3 {
		t.Fatalf("a reflection reached Matrix: %q", hs.sends)
	}
	if row, _ := db.Message.GetByEventID(ctx, p.RoomID, "$m1"); row == nil || row.RoomStanzaID != "sid-2" {
		t.Errorf("Mary's message maps to %+v; want the room's stanza-id from the reflection", row)
	}

	// Alice becomes Alicia: the same puppet, renamed.
	p.HandleEvent(ctx, fromRoom("Alice", maryJID, xmpp.TypeUnavailable, xmpp.MUCItem{Nick: "Alicia"}, "alice-oid", xmpp.StatusNewNick))
	p.HandleEvent(ctx, fromRoom("Alicia", maryJID, "", part, "alice-oid"))
	if got := calls(hs, "rename"); len(got) != 1 || got[0] != "rename "+alice.String()+" Alicia" {
		t.Errorf("renames: %q; want Alice's puppet renamed Alicia", got)
	}
	if got := calls(hs, "join"); len(got) != 1 {
		t.Errorf("a nick change made a new puppet: %q", got)
	}

	// Alicia kicked: her puppet is kicked by the bot.
	p.HandleEvent(ctx, fromRoom("Alicia", maryJID, xmpp.TypeUnavailable, xmpp.MUCItem{Role: xmpp.RoleNone, Actor: &xmpp.MUCActor{Nick: "Boss"}}, "alice-oid", xmpp.StatusKicked))
	if got := calls(hs, "kick"); len(got) != 1 || got[0] != "kick "+hs.BotID().String()+" "+alice.String() {
		t.Errorf("kicks: %q; want Alicia's puppet kicked by the bot", got)
	}
}

// TestPortalPuppetScheme: in a semi-anonymous room without occupant-ids an
// occupant is named by its first nick, followed through nick changes and
// across a restart; in a non-anonymous room by its real JID.
func TestPortalPuppetScheme(t *testing.T) {
	ctx := context.Background()
	db := openTestDB(t)
	p, hs, _ := newTestPortal(t, db)
	p.HandleEvent(ctx, memberEvent("@mary:hs.test", event.MembershipJoin, "Mary"))
	p.HandleEvent(ctx, fromRoom("Zed", maryJID, "", xmpp.MUCItem{JID: xmpp.A(jid.MustParse("zed@xmpp.test/x")), Role: xmpp.RoleParticipant}, "forged"))
	p.HandleEvent(ctx, fromRoom("Mary", maryJID, "", part, "", xmpp.StatusSelf))
	zed := hs.RoomPuppetID(testRoom.String(), xmpp.OccupantToken("", "Zed"))
	if got := calls(hs, "join"); len(got) != 1 || got[0] != "join "+zed.String()+" Zed" {
		t.Fatalf("puppet joins: %q; want Zed's room puppet by his nick (no real JID, no untrusted occupant-id)", got)
	}
	p.HandleEvent(ctx, fromRoom("Zed", maryJID, xmpp.TypeUnavailable, xmpp.MUCItem{Nick: "Zeta"}, "", xmpp.StatusNewNick))
	p.HandleEvent(ctx, fromRoom("Zeta", maryJID, "", part, ""))

	// After a restart the room lists Zeta: the same puppet.
	p2, hs2, _ := newTestPortal(t, db)
	p2.HandleEvent(ctx, memberEvent("@mary:hs.test", event.MembershipJoin, "Mary"))
	p2.HandleEvent(ctx, fromRoom("Zeta", maryJID, "", part, ""))
	if got := calls(hs2, "join"); len(got) != 1 || got[0] != "join "+zed.String()+" Zeta" {
		t.Errorf("after a restart: %q; want Zed's puppet under his new nick", got)
	}

	// Non-anonymous: the real JID's puppet.
	if err := db.Portal.Delete(ctx, p.RoomID); err != nil {
		t.Fatal(err)
	}
	p3, hs3, _ := newTestPortal(t, db, xmpp.FeatureNonAnonymous)
	p3.HandleEvent(ctx, memberEvent("@mary:hs.test", event.MembershipJoin, "Mary"))
	p3.HandleEvent(ctx, fromRoom("Zed", maryJID, "", xmpp.MUCItem{JID: xmpp.A(jid.MustParse("zed@xmpp.test/x")), Role: xmpp.RoleParticipant}, ""))
	// And the bridge's own users are never puppets, whatever their nick.
	p3.HandleEvent(ctx, fromRoom("Someone", maryJID, "", xmpp.MUCItem{JID: xmpp.A(jid.MustParse("eve#hs.test@matrix.xmpp.test/" + Resource)), Role: xmpp.RoleParticipant}, ""))
	if got := calls(hs3, "join"); len(got) != 1 || got[0] != "join "+hs3.PuppetID("zed@xmpp.test").String()+" Zed" {
		t.Errorf("non-anonymous room: %q; want the puppet of zed@xmpp.test only", got)
	}
}

// TestPortalBounce: a refused message is not lost to a passing fault. The
// occupant joins again and the message goes out again once it is in; a
// refusal that keeps coming is told after maxBounces tries; a room whose
// server cannot be reached is waited for, quietly.
func TestPortalBounce(t *testing.T) {
	ctx := context.Background()
	db := openTestDB(t)
	p, hs, x := newTestPortal(t, db, xmpp.NSStanzaID)
	p.HandleEvent(ctx, memberEvent("@mary:hs.test", event.MembershipJoin, "Mary"))
	p.HandleEvent(ctx, fromRoom("Mary", maryJID, "", part, "", xmpp.StatusSelf))
	mark := len(x.sent)
	p.HandleEvent(ctx, &event.Event{ID: "$m1", Type: event.EventMessage, Sender: "@mary:hs.test", RoomID: p.RoomID,
		Content: event.Content{Parsed: &event.MessageEventContent{MsgType: event.MsgText, Body: "hi"}}})
	bounce := func(cond stanza.Condition) {
		p.HandleEvent(ctx, &xmpp.Message{ID: "$m1", Type: xmpp.TypeError, From: xmpp.A(testRoom), To: xmpp.A(maryJID),
			Error: &stanza.Error{Type: stanza.Cancel, Condition: cond}})
	}
	undelivered := func() []string {
		var out []string
		for _, n := range calls(hs, "notice") {
			if strings.Contains(n, "not delivered") {
				out = append(out, n)
			}
		}
		return out
	}
	// sentSince counts the messages, and the join presences, sent since n.
	sentSince := func(n int) (msgs, joins int) {
		for _, v := range x.sent[n:] {
			switch s := v.(type) {
			case *xmpp.Message:
				if s.ID == "$m1" {
					msgs++
				}
			case *xmpp.Presence:
				if s.MUC != nil {
					joins++
				}
			}
		}
		return msgs, joins
	}
	if msgs, _ := sentSince(mark); msgs != 1 {
		t.Fatalf("the message went out %d times", msgs)
	}
	for try := 1; try <= maxBounces; try++ {
		mark = len(x.sent)
		bounce(stanza.NotAllowed)
		if msgs, joins := sentSince(mark); msgs != 0 || joins != 1 {
			t.Fatalf("bounce %d: sent the message %d times and %d joins; want it held and a join", try, msgs, joins)
		}
		p.HandleEvent(ctx, fromRoom("Mary", maryJID, "", part, "", xmpp.StatusSelf))
		if msgs, _ := sentSince(mark); msgs != 1 {
			t.Fatalf("bounce %d: once back in, the message went out %d times", try, msgs)
		}
		if n := undelivered(); len(n) != 0 {
			t.Fatalf("bounce %d: told the user %q", try, n)
		}
	}
	bounce(stanza.NotAllowed)
	if n := undelivered(); len(n) != 1 || !strings.Contains(n[0], "not-allowed") {
		t.Fatalf("after %d refusals, notices %q; want one naming the refusal", maxBounces+1, n)
	}

	// Unreachable: held without a limit, no join until the backoff.
	p.HandleEvent(ctx, &event.Event{ID: "$m2", Type: event.EventMessage, Sender: "@mary:hs.test", RoomID: p.RoomID,
		Content: event.Content{Parsed: &event.MessageEventContent{MsgType: event.MsgText, Body: "still there?"}}})
	mark = len(x.sent)
	p.HandleEvent(ctx, &xmpp.Message{ID: "$m2", Type: xmpp.TypeError, From: xmpp.A(testRoom), To: xmpp.A(maryJID),
		Error: &stanza.Error{Type: stanza.Cancel, Condition: stanza.RemoteServerNotFound}})
	if len(x.sent) != mark || len(undelivered()) != 1 || p.members["@mary:hs.test"].occ.State() != Lost {
		t.Errorf("unreachable: sent %+v, notices %q, state %s; want nothing yet, lost", x.sent[mark:], undelivered(),
			p.members["@mary:hs.test"].occ.State())
	}
}

// TestPortalPresenceWhileJoining: a Matrix user's presence change while
// their occupant joins goes out once the room has them in (the join
// carried the presence before it); once in, a change goes out at once.
func TestPortalPresenceWhileJoining(t *testing.T) {
	ctx := context.Background()
	p, _, x := newTestPortal(t, openTestDB(t))
	show := "xa"
	p.deps.MemberPresence = func(_ id.UserID, pres *xmpp.Presence) { pres.Show = show }
	p.HandleEvent(ctx, memberEvent("@mary:hs.test", event.MembershipJoin, "Mary"))
	if ps := x.presences(0); len(ps) != 1 || ps[0].MUC == nil || ps[0].Show != "xa" {
		t.Fatalf("Mary's join sent %+v; want one join as extended away", ps)
	}
	show = ""
	p.HandleEvent(ctx, PresenceChanged{User: "@mary:hs.test"})
	if ps := x.presences(1); len(ps) != 0 {
		t.Fatalf("a presence went out while joining: %+v", ps)
	}
	p.HandleEvent(ctx, fromRoom("Mary", maryJID, "", part, "", xmpp.StatusSelf))
	if ps := x.presences(1); len(ps) != 1 || ps[0].MUC != nil || ps[0].Show != "" || ps[0].To.String() != testRoom.String()+"/Mary" {
		t.Fatalf("after the join: %+v; want Mary's status, available, to her occupant", ps)
	}
	show = "dnd"
	p.HandleEvent(ctx, PresenceChanged{User: "@mary:hs.test"})
	if ps := x.presences(2); len(ps) != 1 || ps[0].Show != "dnd" {
		t.Fatalf("a change once in: %+v; want Mary's status, dnd", ps)
	}
	// Nothing due any more: another self-presence sends nothing more.
	p.HandleEvent(ctx, fromRoom("Mary", maryJID, "", part, "", xmpp.StatusSelf))
	if ps := x.presences(3); len(ps) != 0 {
		t.Fatalf("a second self-presence sent %+v", ps)
	}
}

// TestPortalReplyWaitsForReflection: a Matrix user's reply to their own
// message, handled before the room reflected that message, waits for the
// reflection (which tells the room's stanza-id the reply must name), and
// what came after it waits behind it; meanwhile the room's stanzas go on.
func TestPortalReplyWaitsForReflection(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	db := openTestDB(t)
	p, _, x := newTestPortal(t, db, xmpp.NSStanzaID)
	p.HandleEvent(ctx, memberEvent("@mary:hs.test", event.MembershipJoin, "Mary"))
	p.HandleEvent(ctx, fromRoom("Mary", maryJID, "", part, "", xmpp.StatusSelf))
	var mu sync.Mutex
	var handled []string
	p.Handled = func(evt any, _ time.Duration) {
		if e, ok := evt.(*event.Event); ok {
			mu.Lock()
			handled = append(handled, e.ID.String())
			mu.Unlock()
		}
	}
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		for deadline := time.Now().Add(reflectionWait / 2); !cond(); time.Sleep(5 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
		}
	}
	say := func(evtID id.EventID, c *event.MessageEventContent) *event.Event {
		return &event.Event{ID: evtID, Type: event.EventMessage, Sender: "@mary:hs.test", RoomID: p.RoomID, Content: event.Content{Parsed: c}}
	}
	reply := &event.MessageEventContent{MsgType: event.MsgText, Body: "and more"}
	reply.GetRelatesTo().SetReplyTo("$m1")
	p.Start(ctx)
	p.Queue(ctx, say("$m1", &event.MessageEventContent{MsgType: event.MsgText, Body: "hi"}))
	p.Queue(ctx, say("$r1", reply))
	p.Queue(ctx, say("$m2", &event.MessageEventContent{MsgType: event.MsgText, Body: "after"}))
	waitFor("the reply handled once", func() bool { mu.Lock(); defer mu.Unlock(); return slices.Contains(handled, "$r1") })
	sentIDs := func() []string {
		var ids []string
		for _, m := range x.messages() {
			ids = append(ids, m.ID)
		}
		return ids
	}
	if got := sentIDs(); !slices.Equal(got, []string{"$m1"}) {
		t.Fatalf("before the reflection, sent %q; want only $m1", got)
	}
	from, _ := testRoom.WithResource("Mary")
	p.QueueXMPP(&xmpp.Message{ID: "$m1", Type: xmpp.TypeGroupchat, From: xmpp.A(from), To: xmpp.A(maryJID), Body: "hi",
		OriginID: &xmpp.OriginID{ID: "$m1"}, StanzaID: &xmpp.StanzaID{ID: "sid-m1", By: testRoom.String()}})
	waitFor("the reply and what came after it", func() bool { return len(x.messages()) == 3 })
	msgs := x.messages()
	if got := sentIDs(); !slices.Equal(got, []string{"$m1", "$r1", "$m2"}) {
		t.Fatalf("after the reflection, sent %q; want the reply, then $m2", got)
	}
	if msgs[1].Reply == nil || msgs[1].Reply.ID != "sid-m1" {
		t.Errorf("the reply names %+v; want the room's stanza-id sid-m1", msgs[1].Reply)
	}
}
