package portal

import (
	"context"
	"testing"

	"github.com/rs/zerolog"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"github.com/mxpp/mxpp/database"
	"github.com/mxpp/mxpp/xmpp"
)

// TestPrivateMessages: an occupant's message to a Matrix member goes to
// the bridge with the member and their occupant JID; to another XMPP
// occupant the room relays it; non-occupants, unknown nicks and rooms with
// private messages off are refused, and payload-only messages refused
// silently.
func TestPrivateMessages(t *testing.T) {
	ctx := context.Background()
	p := testPortal()
	out := &stanzaRecorder{}
	var got []PrivateMessage
	p.deps.XMPP, p.log = out, zerolog.Nop()
	p.deps.Private = func(_ context.Context, pm PrivateMessage) { got = append(got, pm) }
	p.occupants["alice@xmpp.test"].sessions = []session{{jid: jid.MustParse("alice@xmpp.test/phone")}}
	bob := &occupant{bare: jid.MustParse("bob@xmpp.test"), nick: "Bob", puppet: "@_xmpp_bob=40xmpp.test:hs.test",
		sessions: []session{{jid: jid.MustParse("bob@xmpp.test/pc")}, {jid: jid.MustParse("bob@xmpp.test/tab")}}}
	p.occupants["bob@xmpp.test"] = bob
	p.roster.claim("Bob", bob.puppet)
	pm := func(from, nick, body string) *xmpp.Message {
		return &xmpp.Message{ID: "m1", Type: xmpp.TypeChat, From: xmpp.A(jid.MustParse(from)), To: xmpp.A(p.occupantJID(nick)), Body: body}
	}
	refusal := func() stanza.Condition {
		t.Helper()
		if len(out.out) != 1 {
			t.Fatalf("sent %d stanzas; want one error", len(out.out))
		}
		m := out.out[0].(*xmpp.Message)
		out.out = nil
		if m.Type != xmpp.TypeError || m.Error == nil {
			t.Fatalf("sent %+v; want an error", m)
		}
		return m.Error.Condition
	}

	p.handlePrivate(ctx, pm("alice@xmpp.test/phone", "Mary Q", "hi Mary"))
	if len(got) != 1 || got[0].User != "@mary:hs.test" || !got[0].Via.Equal(p.occupantJID("Mary Q")) || got[0].Nick != "Alice" ||
		got[0].Msg.Body != "hi Mary" || len(out.out) != 0 {
		t.Fatalf("to a Matrix member: %+v, sent %v", got, out.out)
	}

	p.handlePrivate(ctx, pm("alice@xmpp.test/phone", "Bob", "hi Bob"))
	if len(out.out) != 2 {
		t.Fatalf("to an XMPP occupant with two sessions: sent %d", len(out.out))
	}
	for _, st := range out.out {
		m := st.(*xmpp.Message)
		if !m.From.Equal(p.occupantJID("Alice")) || m.To.Bare().String() != "bob@xmpp.test" || m.Body != "hi Bob" ||
			m.Type != xmpp.TypeChat || m.MUCUser == nil {
			t.Errorf("relayed as %+v", m)
		}
	}
	out.out = nil

	p.handlePrivate(ctx, pm("carol@xmpp.test/x", "Mary Q", "hello?"))
	if c := refusal(); c != stanza.NotAcceptable {
		t.Errorf("from a non-occupant: %s", c)
	}
	p.handlePrivate(ctx, pm("alice@xmpp.test/phone", "Nobody", "hello?"))
	if c := refusal(); c != stanza.ItemNotFound {
		t.Errorf("to an unknown nick: %s", c)
	}
	p.handlePrivate(ctx, pm("carol@xmpp.test/x", "Mary Q", "")) // a chat state
	if len(out.out) != 0 {
		t.Errorf("a payload-only message from a non-occupant was answered: %v", out.out)
	}
	p.settings = &database.RoomSettings{PMOff: true}
	p.handlePrivate(ctx, pm("alice@xmpp.test/phone", "Mary Q", "still?"))
	if c := refusal(); c != stanza.NotAllowed {
		t.Errorf("with private messages off: %s", c)
	}
	if len(got) != 1 {
		t.Errorf("refused messages reached the bridge: %+v", got)
	}
}
