package portal

import (
	"context"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"github.com/mxpp/mxpp/database"
	"github.com/mxpp/mxpp/matrix"
	"github.com/mxpp/mxpp/xmpp"
)

// directHS is a homeserver for a direct chat: it records what the bridge
// sends and who leaves.
type directHS struct {
	fakeMatrix
	sent    []any
	notices []string
	left    []id.UserID
}

func (h *directHS) BotID() id.UserID { return "@bot:hs.test" }

func (h *directHS) IsBridgeUser(u id.UserID) bool {
	_, puppet := h.ParsePuppetID(u)
	return puppet || u == h.BotID()
}

func (h *directHS) SendMessage(_ context.Context, _ id.RoomID, _ id.UserID, _ string, _ event.Type, content any, _ time.Time) (id.EventID, error) {
	h.sent = append(h.sent, content)
	return id.EventID("$x" + string(rune('0'+len(h.sent)))), nil
}

func (h *directHS) FindSent(context.Context, id.RoomID, id.UserID, string) id.EventID { return "" }

func (h *directHS) SendNotice(_ context.Context, _ id.RoomID, text string, _ id.EventID) (id.EventID, error) {
	h.notices = append(h.notices, text)
	return "$notice", nil
}

func (h *directHS) LeavePuppet(_ context.Context, _ id.RoomID, u id.UserID, _ string) error {
	h.left = append(h.left, u)
	return nil
}

func (h *directHS) ForgetRoom(context.Context, id.RoomID) error { return nil }

func (h *directHS) SetTyping(context.Context, id.RoomID, id.UserID, bool) error { return nil }

// stanzaRecorder is an XMPP server that takes every stanza.
type stanzaRecorder struct {
	XMPPAPI
	out []any
}

func (r *stanzaRecorder) Send(_ context.Context, v any) error {
	r.out = append(r.out, v)
	return nil
}

func (r *stanzaRecorder) Link() uint64         { return 1 }
func (r *stanzaRecorder) LinkUp(l uint64) bool { return l == 1 }

// TestDirectChat: the Matrix user's messages go out as chat messages from
// their contact JID; the XMPP user's come in without reflection; a bounce
// tells the Matrix user; only the chat's XMPP user is heard; leaving ends
// the chat.
func TestDirectChat(t *testing.T) {
	ctx := context.Background()
	db := openTestDB(t)
	var err error
	row := database.NewDirect("!dm:hs.test", "@mary:hs.test", "alice@xmpp.test")
	if err = db.Portal.Insert(ctx, row); err != nil {
		t.Fatal(err)
	}
	hs, out := &directHS{}, &stanzaRecorder{}
	p, err := NewDirect(row, &Deps{Matrix: hs, XMPP: out, DB: db, Log: zerolog.Nop(),
		Scheme: xmpp.Scheme{Domain: jid.MustParse("matrix.xmpp.test")}})
	if err != nil {
		t.Fatal(err)
	}
	p.info = &matrix.RoomInfo{Members: map[id.UserID]matrix.Member{"@mary:hs.test": {Displayname: "Mary"}},
		Invited: map[id.UserID]bool{}, Banned: map[id.UserID]bool{}}
	p.roster, p.typing, p.lastRead = newRoster(), map[id.UserID]bool{}, map[id.UserID]id.EventID{}
	p.kind.onLoad(ctx)
	p.roster.set("@mary:hs.test", "Mary")
	p.loaded = true
	maryJID, alice := jid.MustParse("mary#hs.test@matrix.xmpp.test"), jid.MustParse("alice@xmpp.test/phone")

	msg := &event.Event{ID: "$m1", Type: event.EventMessage, Sender: "@mary:hs.test", RoomID: row.RoomID,
		Content: event.Content{Parsed: &event.MessageEventContent{MsgType: event.MsgText, Body: "hi"}}}
	p.HandleEvent(ctx, msg)
	if len(out.out) != 1 {
		t.Fatalf("sent %d stanzas for a Matrix message; want 1", len(out.out))
	}
	m := out.out[0].(*xmpp.Message)
	if m.Type != xmpp.TypeChat || !m.From.Equal(maryJID) || m.To.String() != "alice@xmpp.test" || m.Body != "hi" || m.ID != "$m1" {
		t.Errorf("Matrix message went out as %+v", m)
	}
	// The puppet's own messages and others' are not sent back.
	for _, sender := range []id.UserID{"@_xmpp_alice=40xmpp.test:hs.test", "@eve:hs.test"} {
		evt := *msg
		evt.ID, evt.Sender = "$other", sender
		p.HandleEvent(ctx, &evt)
	}
	if len(out.out) != 1 {
		t.Errorf("messages of others in the chat went to XMPP: %+v", out.out[1:])
	}

	// Typing: only the chat's Matrix user's reaches XMPP.
	p.roster.set("@eve:hs.test", "Eve")
	p.HandleEvent(ctx, &event.Event{Type: event.EphemeralEventTyping, RoomID: row.RoomID,
		Content: event.Content{Parsed: &event.TypingEventContent{UserIDs: []id.UserID{"@eve:hs.test"}}}})
	if len(out.out) != 1 {
		t.Errorf("another member's typing went to XMPP: %+v", out.out[1:])
	}
	p.HandleEvent(ctx, &event.Event{Type: event.EphemeralEventTyping, RoomID: row.RoomID,
		Content: event.Content{Parsed: &event.TypingEventContent{UserIDs: []id.UserID{"@eve:hs.test", "@mary:hs.test"}}}})
	if len(out.out) != 2 || out.out[1].(*xmpp.Message).Composing == nil || !out.out[1].(*xmpp.Message).From.Equal(maryJID) {
		t.Fatalf("mary's typing went out as %+v", out.out[1:])
	}
	out.out = out.out[:1]

	p.HandleEvent(ctx, &xmpp.Message{ID: "a1", Type: xmpp.TypeChat, From: xmpp.A(alice), To: xmpp.A(maryJID), Body: "hello"})
	if len(hs.sent) != 1 || hs.sent[0].(*event.MessageEventContent).Body != "hello" {
		t.Fatalf("XMPP message reached Matrix as %+v", hs.sent)
	}
	if len(out.out) != 1 {
		t.Errorf("an XMPP message in a direct chat was reflected: %+v", out.out[1:])
	}
	// A stanza of another XMPP user (a routing bug) is dropped.
	p.HandleEvent(ctx, &xmpp.Message{ID: "e1", Type: xmpp.TypeChat, From: xmpp.A(jid.MustParse("eve@xmpp.test/x")), To: xmpp.A(maryJID), Body: "psst"})
	if len(hs.sent) != 1 {
		t.Error("a message of another XMPP user reached the chat")
	}

	p.HandleEvent(ctx, &xmpp.Message{ID: "$m1", Type: xmpp.TypeError, From: xmpp.A(alice.Bare()), To: xmpp.A(maryJID),
		Error: &stanza.Error{Condition: stanza.ServiceUnavailable}})
	if len(hs.notices) != 1 {
		t.Fatalf("a bounced message gave %d notices; want 1", len(hs.notices))
	}

	leave := &event.Event{Type: event.StateMember, Sender: "@mary:hs.test", StateKey: new("@mary:hs.test"), RoomID: row.RoomID,
		Content: event.Content{Parsed: &event.MemberEventContent{Membership: event.MembershipLeave}}}
	// Run by the loop, as a transaction does: the flush after the event
	// that ended the chat returns at once, so the transaction succeeds.
	p.Start(ctx)
	p.Queue(ctx, leave)
	fctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if failed, err := p.Flush(fctx); err != nil || len(failed) > 0 {
		t.Errorf("flush after the chat ended: %v, %v; want nothing failed", failed, err)
	}
	if !p.Ended() {
		t.Error("the chat stayed open after the Matrix user left")
	}
	if len(hs.left) != 2 {
		t.Errorf("left the room: %v; want the puppet and the bot", hs.left)
	}
	if got, _ := db.Portal.GetByRoomID(ctx, row.RoomID); got != nil {
		t.Error("the chat's row outlived it")
	}
}
