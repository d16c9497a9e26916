package portal

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
	"mellium.im/xmpp/jid"

	"github.com/mxpp/mxpp/database"
	"github.com/mxpp/mxpp/matrix"
	"github.com/mxpp/mxpp/xmpp"
)

// authorityHS is a homeserver that knows no event beyond the message map.
type authorityHS struct{ directHS }

func (*authorityHS) GetEvent(context.Context, id.RoomID, id.EventID) (*event.Event, error) {
	return nil, errors.New("not found")
}

// TestRedactionAndEditAuthority: a member may retract or correct only
// their own messages on XMPP; deleting others' messages (moderation) needs
// the room's redact level. Homeservers accept other redactions and edits
// into the room without applying them, so relaying them would let any
// member delete or rewrite anyone's message for XMPP users.
func TestRedactionAndEditAuthority(t *testing.T) {
	ctx := context.Background()
	db := openTestDB(t)
	var err error
	out := &stanzaRecorder{}
	p := testPortal()
	p.deps.DB, p.deps.Matrix, p.deps.XMPP, p.log = db, &authorityHS{}, out, zerolog.Nop()
	if err := db.Portal.Insert(ctx, p.Portal); err != nil {
		t.Fatal(err)
	}
	const mary, sam, mod = id.UserID("@mary:hs.test"), id.UserID("@sam:hs.test"), id.UserID("@mod:hs.test")
	p.roster.set(sam, "Sam")
	p.roster.set(mod, "Mod")
	p.info = &matrix.RoomInfo{Members: map[id.UserID]matrix.Member{}, PowerLevels: &event.PowerLevelsEventContent{
		Users: map[id.UserID]int{mod: 50}}}
	p.occupants["alice@xmpp.test"].sessions = []session{{jid: jid.MustParse("alice@xmpp.test/phone")}}
	for _, m := range []*database.Message{
		{RoomID: p.RoomID, EventID: "$mary1", SenderJID: "mary#hs.test@matrix.xmpp.test", StanzaID: "$mary1"},
		{RoomID: p.RoomID, EventID: "$mary2", SenderJID: "mary#hs.test@matrix.xmpp.test", StanzaID: "$mary2"},
		{RoomID: p.RoomID, EventID: "$mary3", SenderJID: "mary#hs.test@matrix.xmpp.test", StanzaID: "$mary3"},
	} {
		m.Timestamp = time.Now()
		if err = db.Message.Insert(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	redact := func(evtID id.EventID, sender id.UserID, target id.EventID) []any {
		out.out = nil
		p.handleMatrixRedaction(ctx, &event.Event{ID: evtID, Type: event.EventRedaction, Sender: sender, RoomID: p.RoomID,
			Content: event.Content{Parsed: &event.RedactionEventContent{Redacts: target}}})
		return out.out
	}
	if got := redact("$r1", sam, "$mary1"); len(got) != 0 {
		t.Errorf("a plain member's redaction of another's message went to XMPP: %+v", got)
	}
	if got := redact("$r2", mary, "$mary1"); len(got) != 1 || got[0].(*xmpp.Message).Retract == nil || got[0].(*xmpp.Message).Retract.Moderated != nil {
		t.Errorf("the author's redaction: %+v; want one retraction", got)
	}
	if got := redact("$r3", mod, "$mary2"); len(got) != 1 || got[0].(*xmpp.Message).Retract == nil || got[0].(*xmpp.Message).Retract.Moderated == nil {
		t.Errorf("a moderator's redaction: %+v; want one moderation", got)
	}

	edit := func(sender id.UserID) *xmpp.Message {
		out.out = nil
		p.handleMatrixMessage(ctx, &event.Event{ID: id.EventID("$edit-" + sender.Localpart()), Type: event.EventMessage, Sender: sender, RoomID: p.RoomID,
			Content: event.Content{Parsed: &event.MessageEventContent{MsgType: event.MsgText, Body: "* changed",
				NewContent: &event.MessageEventContent{MsgType: event.MsgText, Body: "changed"},
				RelatesTo:  &event.RelatesTo{Type: event.RelReplace, EventID: "$mary3"}}}})
		if len(out.out) != 1 {
			t.Fatalf("edit by %s: %d stanzas", sender, len(out.out))
		}
		return out.out[0].(*xmpp.Message)
	}
	if m := edit(sam); m.Replace != nil || m.Body != "* changed" {
		t.Errorf("another member's edit went out as %+v (replace %+v); want a new message marked \"* \"", m, m.Replace)
	}
	if m := edit(mary); m.Replace == nil || m.Replace.ID != "$mary3" || m.Body != "changed" {
		t.Errorf("the author's edit went out as %+v (replace %+v); want a correction of $mary3", m, m.Replace)
	}
}
