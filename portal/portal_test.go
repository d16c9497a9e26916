package portal

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
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
	"github.com/mxpp/mxpp/roomloop"
	"github.com/mxpp/mxpp/xmpp"
)

func nickOf(r *roster, u id.UserID) string { return r.members[u].nick }

func TestRosterNicks(t *testing.T) {
	r := newRoster()
	changes := r.set("@alice:hs.test", "Alice")
	if len(changes) != 1 || changes[0].old != "" || nickOf(r, "@alice:hs.test") != "Alice" {
		t.Fatalf("new member: changes %+v, nick %q", changes, nickOf(r, "@alice:hs.test"))
	}
	// Same display name, another user: both get their localpart, and the
	// first one's nick changes.
	changes = r.set("@alice2:hs.test", "alice")
	if nickOf(r, "@alice:hs.test") != "Alice (alice)" || nickOf(r, "@alice2:hs.test") != "alice (alice2)" || len(changes) != 2 {
		t.Errorf("two Alices: %q and %q, changes %+v", nickOf(r, "@alice:hs.test"), nickOf(r, "@alice2:hs.test"), changes)
	}
	// The plain display name stays reserved for them.
	if u, taken := r.owns("ALICE"); !taken || (u != "@alice:hs.test" && u != "@alice2:hs.test") {
		t.Errorf("owns(ALICE) = %s, %v", u, taken)
	}
	// The result does not depend on the order they came in.
	r2 := newRoster()
	r2.set("@alice2:hs.test", "alice")
	r2.set("@alice:hs.test", "Alice")
	if nickOf(r2, "@alice:hs.test") != "Alice (alice)" || nickOf(r2, "@alice2:hs.test") != "alice (alice2)" {
		t.Error("nicks depend on joining order")
	}
	// When one leaves, the other gets the plain name back.
	m, changes := r.remove("@alice2:hs.test")
	if m == nil || nickOf(r, "@alice:hs.test") != "Alice" || len(changes) != 1 || changes[0].old != "Alice (alice)" {
		t.Errorf("after a leave: %q, changes %+v", nickOf(r, "@alice:hs.test"), changes)
	}
	// An XMPP occupant holds a nick; a member named so is suffixed.
	r.claim("Bob", "@_xmpp_bob=40x:hs.test")
	r.set("@bob:hs.test", "BOB")
	if nickOf(r, "@bob:hs.test") != "BOB (bob)" {
		t.Errorf("member named like an occupant got %q", nickOf(r, "@bob:hs.test"))
	}
	// A rename frees the old nick.
	changes = r.set("@alice:hs.test", "Alicia")
	if len(changes) != 1 || changes[0].old != "Alice" || nickOf(r, "@alice:hs.test") != "Alicia" {
		t.Errorf("rename: %+v", changes)
	}
	if _, taken := r.owns("alice"); taken {
		t.Error("the old nick is still taken after a rename")
	}
	if changes = r.set("@alice:hs.test", "Alicia"); changes != nil {
		t.Errorf("an unchanged member reported %+v", changes)
	}
	// Empty and unusable display names fall back to the localpart.
	r.set("@carol:hs.test", "")
	r.set("@dave:hs.test", "\u0007\u0000  ")
	if nickOf(r, "@carol:hs.test") != "carol" || nickOf(r, "@dave:hs.test") != "dave" {
		t.Errorf("fallback nicks %q %q", nickOf(r, "@carol:hs.test"), nickOf(r, "@dave:hs.test"))
	}
	if m, _ := r.remove("@carol:hs.test"); m == nil {
		t.Error("remove of a member returned nil")
	}
	if _, taken := r.owns("carol"); taken {
		t.Error("a removed member's nick is still taken")
	}
}

func TestCleanNick(t *testing.T) {
	for in, want := range map[string]string{
		"  Alice  ":              "Alice",
		"Zoë 🦊":                  "Zoë 🦊",
		"line\nbreak":            "linebreak",
		strings.Repeat("x", 100): strings.Repeat("x", maxNickRunes),
		"":                       "",
		"\u200b":                 "",
	} {
		if got := cleanNick(in); got != want {
			t.Errorf("cleanNick(%q) = %q; want %q", in, got, want)
		}
	}
}

func testPortal() *Portal {
	p := &Portal{
		Portal:    &database.Portal{RoomID: "!r:hs.test", Alias: "#r:hs.test"},
		roomJID:   jid.MustParse("#r#hs.test@matrix.xmpp.test"),
		roster:    newRoster(),
		info:      &matrix.RoomInfo{Members: map[id.UserID]matrix.Member{}},
		occupants: map[string]*occupant{},
		deps:      &Deps{Scheme: xmpp.Scheme{Domain: jid.MustParse("matrix.xmpp.test")}, Matrix: fakeMatrix{}},
	}
	p.kind = muc{p}
	p.Loop = roomloop.New(p, zerolog.Nop())
	p.roster.set("@mary:hs.test", "Mary Q")
	alice := &occupant{bare: jid.MustParse("alice@xmpp.test"), nick: "Alice", puppet: "@_xmpp_alice=40xmpp.test:hs.test"}
	p.occupants["alice@xmpp.test"] = alice
	p.roster.claim("Alice", alice.puppet)
	return p
}

// fakeMatrix is the part of MatrixAPI the converters use.
type fakeMatrix struct{ MatrixAPI }

func (fakeMatrix) PuppetID(remote string) id.UserID {
	return id.UserID("@_xmpp_" + id.EncodeUserLocalpart(remote) + ":hs.test")
}

func (fakeMatrix) ParsePuppetID(u id.UserID) (string, bool) {
	local, ok := strings.CutPrefix(u.Localpart(), "_xmpp_")
	if !ok {
		return "", false
	}
	r, err := id.DecodeUserLocalpart(local)
	return r, err == nil
}

func TestMatrixContent(t *testing.T) {
	p := testPortal()
	n := func(i int) *int { return &i }
	for _, tc := range []struct {
		name     string
		msg      xmpp.Message
		msgtype  event.MessageType
		body     string
		html     string
		mentions []id.UserID
	}{
		{"plain", xmpp.Message{Body: "<b>not html</b>"}, event.MsgText, "<b>not html</b>", "", nil},
		{"emote", xmpp.Message{Body: "/me waves"}, event.MsgEmote, "waves", "", nil},
		{"styled", xmpp.Message{Body: "a *b*"}, event.MsgText, "a *b*", "a <strong>b</strong>", nil},
		{"nick prefix", xmpp.Message{Body: "Mary Q: *hi*"}, event.MsgText, "Mary Q: *hi*",
			`<a href="https://matrix.to/#/@mary:hs.test">Mary Q</a>: <strong>hi</strong>`, []id.UserID{"@mary:hs.test"}},
		{"not a nick", xmpp.Message{Body: "Note: x"}, event.MsgText, "Note: x", "", nil},
		{"reference", xmpp.Message{Body: "ping Älice?", References: []xmpp.Reference{{Type: "mention",
			URI: "xmpp:#r#hs.test@matrix.xmpp.test/Alice", Begin: n(5), End: n(10)}}}, event.MsgText, "ping Älice?",
			`ping <a href="https://matrix.to/#/@_xmpp_alice=40xmpp.test:hs.test">Älice</a>?`, []id.UserID{"@_xmpp_alice=40xmpp.test:hs.test"}},
		// As RFC 5122 writes it, and as clients that follow it send it.
		{"percent-encoded reference", xmpp.Message{Body: "hi Mary Q", References: []xmpp.Reference{{Type: "mention",
			URI: "xmpp:%23r%23hs.test@matrix.xmpp.test/Mary%20Q", Begin: n(3), End: n(9)}}}, event.MsgText, "hi Mary Q",
			`hi <a href="https://matrix.to/#/@mary:hs.test">Mary Q</a>`, []id.UserID{"@mary:hs.test"}},
		{"bad reference range", xmpp.Message{Body: "x", References: []xmpp.Reference{{Type: "mention",
			URI: "xmpp:#r#hs.test@matrix.xmpp.test/Alice", Begin: n(0), End: n(99)}}}, event.MsgText, "x", "", nil},
		{"mention cannot be styled away", xmpp.Message{Body: "Mary Q: `code`"}, event.MsgText, "Mary Q: `code`",
			`<a href="https://matrix.to/#/@mary:hs.test">Mary Q</a>: <code>code</code>`, []id.UserID{"@mary:hs.test"}},
	} {
		c := p.matrixContent(&tc.msg)
		if c.MsgType != tc.msgtype || c.Body != tc.body || c.FormattedBody != tc.html || !slices.Equal(c.Mentions.UserIDs, tc.mentions) {
			t.Errorf("%s: %s %q %q %v; want %s %q %q %v", tc.name, c.MsgType, c.Body, c.FormattedBody, c.Mentions.UserIDs,
				tc.msgtype, tc.body, tc.html, tc.mentions)
		}
		if tc.html != "" && c.Format != event.FormatHTML {
			t.Errorf("%s: format %q", tc.name, c.Format)
		}
	}
}

func TestXMPPBody(t *testing.T) {
	p := testPortal()
	for _, tc := range []struct {
		name string
		c    event.MessageEventContent
		want string
		refs int
	}{
		{"text", event.MessageEventContent{MsgType: event.MsgText, Body: "hi"}, "hi", 0},
		{"emote", event.MessageEventContent{MsgType: event.MsgEmote, Body: "waves"}, "/me waves", 0},
		{"html", event.MessageEventContent{MsgType: event.MsgText, Body: "**b**", Format: event.FormatHTML, FormattedBody: "<b>b</b>"}, "*b*", 0},
		{"pill", event.MessageEventContent{MsgType: event.MsgText, Body: "Mary: hi", Format: event.FormatHTML,
			FormattedBody: `<a href="https://matrix.to/#/@mary:hs.test">Mary</a>: hi`}, "Mary Q: hi", 1},
		{"pill of an unknown user", event.MessageEventContent{MsgType: event.MsgText, Body: "x", Format: event.FormatHTML,
			FormattedBody: `<a href="https://matrix.to/#/@zed:hs.test">Zed</a>`}, "Zed", 0},
		{"emote with pill", event.MessageEventContent{MsgType: event.MsgEmote, Body: "x", Format: event.FormatHTML,
			FormattedBody: `hugs <a href="https://matrix.to/#/@_xmpp_alice=40xmpp.test:hs.test">alice</a>`}, "/me hugs Alice", 1},
		{"image", event.MessageEventContent{MsgType: event.MsgImage, Body: "cat.png"}, "[image: cat.png]", 0},
		{"reply fallback", event.MessageEventContent{MsgType: event.MsgText, Body: "> <@x:y> quoted\n\nreply",
			Format: event.FormatHTML, FormattedBody: "<mx-reply>q</mx-reply>reply", RelatesTo: &event.RelatesTo{InReplyTo: &event.InReplyTo{EventID: "$x"}}}, "reply", 0},
	} {
		body, refs := p.xmppBody(context.Background(), &tc.c)
		if body != tc.want || len(refs) != tc.refs {
			t.Errorf("%s: %q with %d references; want %q with %d", tc.name, body, len(refs), tc.want, tc.refs)
		}
		for _, r := range refs {
			addr, _, err := xmpp.ParseURI(r.URI)
			if got := string([]rune(body)[*r.Begin:*r.End]); err != nil || addr.Resourcepart() != got {
				t.Errorf("%s: reference %s (%v) covers %q", tc.name, r.URI, err, got)
			}
		}
	}
}

func TestReachable(t *testing.T) {
	scheme := xmpp.Scheme{Domain: jid.MustParse("matrix.xmpp.test")}
	for _, tc := range []struct {
		info *matrix.RoomInfo
		want stanza.Condition
	}{
		{&matrix.RoomInfo{CanonicalAlias: "#a:hs.test", JoinRule: event.JoinRulePublic}, ""},
		{&matrix.RoomInfo{CanonicalAlias: "", JoinRule: event.JoinRulePublic}, stanza.ItemNotFound},
		{&matrix.RoomInfo{CanonicalAlias: "#a:other.test", JoinRule: event.JoinRulePublic}, stanza.ItemNotFound},
		{&matrix.RoomInfo{CanonicalAlias: "#a:hs.test", JoinRule: event.JoinRuleInvite}, ""}, // members-only, still addressable
		{&matrix.RoomInfo{CanonicalAlias: "# a:hs.test", JoinRule: event.JoinRulePublic}, stanza.ItemNotFound},
	} {
		err := Reachable(tc.info, scheme, "hs.test")
		var got stanza.Condition
		if err != nil {
			got = err.(stanza.Error).Condition
		}
		if got != tc.want {
			t.Errorf("Reachable(%+v) = %v; want %q", tc.info, err, tc.want)
		}
	}
}

func TestSplitAlias(t *testing.T) {
	for in, want := range map[id.RoomAlias][3]string{
		"#lobby:hs.test": {"lobby", "hs.test", "ok"},
		"#a:b:8448":      {"a", "b:8448", "ok"},
		"lobby:hs.test":  {"", "", ""},
		"#:hs.test":      {"", "", ""},
		"#nohost":        {"", "", ""},
	} {
		l, s, ok := SplitAlias(in)
		if (ok && want[2] != "ok") || (!ok && want[2] == "ok") || (ok && (l != want[0] || s != want[1])) {
			t.Errorf("SplitAlias(%q) = %q, %q, %v", in, l, s, ok)
		}
	}
}

func TestSessionGone(t *testing.T) {
	if !sessionGone(&stanza.Error{Condition: stanza.ServiceUnavailable}) || sessionGone(&stanza.Error{Condition: stanza.Forbidden}) || sessionGone(nil) {
		t.Error("sessionGone misjudges bounce conditions")
	}
}

// TestPingResult: only an answer, an error saying the session is gone, or
// silence after the ping went out count; a ping that could not be sent
// proves nothing about the client.
func TestPingResult(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		want pingOutcome
	}{
		{"answered", nil, pingAnswered},
		{"bounced", stanza.Error{Condition: stanza.ServiceUnavailable}, pingGone},
		{"session gone", stanza.Error{Condition: stanza.ItemNotFound}, pingGone},
		{"other error", stanza.Error{Condition: stanza.InternalServerError}, pingUnknown},
		{"no answer", fmt.Errorf("%w: %w", xmpp.ErrNoReply, context.DeadlineExceeded), pingSilent},
		{"not sent in time", fmt.Errorf("failed to send stanza: %w", context.DeadlineExceeded), pingUnknown},
		{"link down", xmpp.ErrNotConnected, pingUnknown},
	} {
		if got := pingResult(tc.err); got != tc.want {
			t.Errorf("%s: pingResult(%v) = %d; want %d", tc.name, tc.err, got, tc.want)
		}
	}
	if got := quietPingTimeout(time.Second); got != 5*time.Second {
		t.Errorf("ping timeout for a 1s interval = %s", got)
	}
	if got := quietPingTimeout(10 * time.Minute); got != 30*time.Second {
		t.Errorf("ping timeout for a 10m interval = %s", got)
	}
}

// sendRecorder is a homeserver that may take a send and lose the answer.
type sendRecorder struct {
	fakeMatrix
	events map[string]id.EventID // by transaction ID: what the room holds
	sends  int
	lose   bool // take the next send, then fail as if the bridge died
}

func (s *sendRecorder) SendMessage(_ context.Context, _ id.RoomID, _ id.UserID, txn string, _ event.Type, _ any, _ time.Time) (id.EventID, error) {
	s.sends++
	evtID := id.EventID(fmt.Sprintf("$e%d", s.sends))
	s.events[txn] = evtID
	if s.lose {
		s.lose = false
		return "", context.Canceled
	}
	return evtID, nil
}

func (s *sendRecorder) FindSent(_ context.Context, _ id.RoomID, _ id.UserID, txn string) id.EventID {
	return s.events[txn]
}

// TestSendOnce: a send cut off before its event ID was stored is found in
// the room by the next attempt instead of being sent twice; finished and
// random-ID sends go straight out.
func TestSendOnce(t *testing.T) {
	ctx := context.Background()
	db := openTestDB(t)
	hs := &sendRecorder{events: map[string]id.EventID{}}
	p := testPortal()
	p.deps.DB, p.deps.Matrix, p.log = db, hs, zerolog.Nop()
	if err := db.Portal.Insert(ctx, p.Portal); err != nil {
		t.Fatal(err)
	}
	puppet := id.UserID("@_xmpp_alice=40xmpp.test:hs.test")
	txn := msgconv.TxnID(p.RoomID.String(), "alice@xmpp.test", "s1", "")

	hs.lose = true
	if _, err := p.sendOnce(ctx, puppet, txn, event.EventMessage, nil); err == nil {
		t.Fatal("the lost send reported success")
	}
	evtID, err := p.sendOnce(ctx, puppet, txn, event.EventMessage, nil)
	if err != nil || evtID != "$e1" || hs.sends != 1 {
		t.Fatalf("retry after a lost answer = %s, %v after %d sends; want the first event, one send", evtID, err, hs.sends)
	}
	if err = p.sender().Store(ctx, &database.Message{RoomID: p.RoomID, EventID: evtID, SenderJID: "alice@xmpp.test", StanzaID: "s1", Timestamp: time.Now()}, txn); err != nil {
		t.Fatal(err)
	}
	// Once its event is stored, the same transaction goes to the homeserver again
	// (which answers a true retry from its own memory).
	if _, err := p.sendOnce(ctx, puppet, txn, event.EventMessage, nil); err != nil || hs.sends != 2 {
		t.Fatalf("send after a finished one: %v, %d sends", err, hs.sends)
	}
	random := msgconv.TxnID(p.RoomID.String(), "alice@xmpp.test", "", "")
	for range 2 {
		if _, err := p.sendOnce(ctx, puppet, random, event.EventMessage, nil); err != nil {
			t.Fatal(err)
		}
	}
	if hs.sends != 4 {
		t.Errorf("sends with random transaction IDs: %d; want each sent", hs.sends-2)
	}
}

// openTestDB opens a database of its own for a test, closed at its end.
func openTestDB(t testing.TB) *database.Database {
	t.Helper()
	db, err := database.Open(context.Background(), database.Config{URI: "file:" + filepath.Join(t.TempDir(), "t.db")}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}
