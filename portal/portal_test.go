package portal

import (
	"strings"
	"testing"

	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"github.com/mxpp/mxpp/matrix"
	"github.com/mxpp/mxpp/xmpp"
)

func TestRosterNicks(t *testing.T) {
	r := newRoster()
	alice, _ := r.add("@alice:hs.test", "Alice")
	if alice.nick != "Alice" {
		t.Fatalf("nick = %q; want the display name", alice.nick)
	}
	// Same display name, another user: disambiguated, stable for each.
	other, _ := r.add("@alice2:hs.test", "alice")
	if other.nick != "alice (alice2)" {
		t.Errorf("second Alice got %q", other.nick)
	}
	// An XMPP occupant holds a nick; a member taking that name moves aside.
	r.claim("Bob", "@_xmpp_bob=40x:hs.test")
	bob, _ := r.add("@bob:hs.test", "BOB")
	if bob.nick != "BOB (bob)" {
		t.Errorf("member named like an occupant got %q", bob.nick)
	}
	// A rename reports the old nick and frees it.
	renamed, old := r.add("@alice:hs.test", "Alicia")
	if old != "Alice" || renamed.nick != "Alicia" {
		t.Errorf("rename: old %q new %q", old, renamed.nick)
	}
	if _, taken := r.owns("alice"); taken {
		t.Error("the old nick is still taken after a rename")
	}
	// Same display name again: no change.
	if _, old = r.add("@alice:hs.test", "Alicia"); old != "Alicia" {
		t.Errorf("unchanged member reported old nick %q", old)
	}
	// Empty and unusable display names fall back to the localpart.
	if m, _ := r.add("@carol:hs.test", ""); m.nick != "carol" {
		t.Errorf("empty display name gave %q", m.nick)
	}
	if m, _ := r.add("@dave:hs.test", "\u0007\u0000  "); m.nick != "dave" {
		t.Errorf("control characters gave %q", m.nick)
	}
	if r.remove("@carol:hs.test") == nil {
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

func TestTxnID(t *testing.T) {
	a := txnID("!r:hs", "alice@x", "s1", "m1")
	if a != txnID("!r:hs", "alice@x", "s1", "other") {
		t.Error("txnID is not stable for the same stanza")
	}
	for _, other := range []string{txnID("!r2:hs", "alice@x", "s1", ""), txnID("!r:hs", "bob@x", "s1", ""), txnID("!r:hs", "alice@x", "s2", "")} {
		if other == a {
			t.Error("txnID collides across rooms, senders or stanzas")
		}
	}
	if txnID("!r:hs", "a", "", "") == txnID("!r:hs", "a", "", "") {
		t.Error("stanzas without any id got the same transaction ID")
	}
}

func TestContentConversion(t *testing.T) {
	if typ, c := matrixContent("/me waves"); typ != event.EventMessage || c.MsgType != event.MsgEmote || c.Body != "waves" {
		t.Errorf("/me: %v %+v", typ, c)
	}
	if _, c := matrixContent("<b>not html</b>"); c.MsgType != event.MsgText || c.Body != "<b>not html</b>" || c.FormattedBody != "" {
		t.Errorf("text: %+v", c)
	}
	for _, tc := range []struct {
		c    event.MessageEventContent
		want string
	}{
		{event.MessageEventContent{MsgType: event.MsgText, Body: "hi"}, "hi"},
		{event.MessageEventContent{MsgType: event.MsgEmote, Body: "waves"}, "/me waves"},
		{event.MessageEventContent{MsgType: event.MsgImage, Body: "cat.png"}, "[image: cat.png]"},
		{event.MessageEventContent{MsgType: event.MsgText, Body: "> <@x:y> quoted\n\nreply",
			Format: event.FormatHTML, FormattedBody: "<mx-reply>q</mx-reply>reply", RelatesTo: &event.RelatesTo{InReplyTo: &event.InReplyTo{EventID: "$x"}}}, "reply"},
	} {
		if got := xmppBody(&tc.c); got != tc.want {
			t.Errorf("xmppBody(%+v) = %q; want %q", tc.c, got, tc.want)
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
