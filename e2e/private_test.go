//go:build e2e

package e2e

import (
	"slices"
	"strings"
	"testing"

	"maunium.net/go/mautrix/event"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"github.com/mxpp/mxpp/xmpp"
)

// TestE2EPrivateMessages: an occupant's private message to a Matrix member
// (XEP-0045 §7.5) opens a private chat on Matrix, named after the room;
// the member's answers come back from their occupant JID. Between two XMPP
// occupants the room relays it. Non-occupants are refused, and so is
// everyone once a room admin turns private messages off, which disco#info
// shows.
func TestE2EPrivateMessages(t *testing.T) {
	v := need(t)
	mary := v.newEncryptedUser(t, "mary", "Mary")
	room, alias := mary.createRoom("pm", "Private", "")
	mary.expose(room)
	muc := mucJID(t, alias)
	alice := v.newXMPPClient(t, "alice", "pm")
	alice.mustJoin(muc, "Alice")
	bob := v.newXMPPClient(t, "bob", "pm")
	bob.mustJoin(muc, "Bob")
	puppet := puppetOf("alice@" + v.XMPPDomain)

	// Alice writes to Mary privately: a private chat opens on Matrix.
	alice.send(&xmpp.Message{ID: "pm1", Type: xmpp.TypeChat, To: xmpp.A(occ(muc, "Mary")), Body: "psst, Mary"})
	invite := mary.waitEvent("the invitation to a private chat", isDirectInvite(mary.id, puppet))
	chat := invite.RoomID
	if chat == room {
		t.Fatal("the private message went to the room")
	}
	mary.join(chat)
	mary.waitEvent("Alice's private message", wasEncrypted(chat, puppet, "psst, Mary"))
	var name event.RoomNameEventContent
	if err := mary.c.StateEvent(ctx(t), chat, event.StateRoomName, "", &name); err != nil || !strings.Contains(name.Name, "Alice") ||
		!strings.Contains(name.Name, alias.String()) {
		t.Errorf("the private chat's name %q (%v); want it to name Alice and the room", name.Name, err)
	}
	for _, body := range mary.messagesFrom(room, puppet) {
		if body == "psst, Mary" {
			t.Error("the private message also reached the room")
		}
	}

	// Mary answers: it comes from her occupant JID, marked as a MUC PM.
	mark := alice.mark()
	mary.say(chat, "yes, Alice?")
	st, _ := alice.waitFrom(mark, "Mary's answer", func(v any) bool {
		m, ok := v.(*xmpp.Message)
		return ok && m.Type == xmpp.TypeChat && m.Body == "yes, Alice?"
	})
	if m := st.(*xmpp.Message); !m.From.Equal(occ(muc, "Mary")) || m.MUCUser == nil {
		t.Errorf("Mary's answer came from %s (muc#user %v); want her occupant JID %s with the MUC user payload",
			m.From, m.MUCUser != nil, occ(muc, "Mary"))
	}
	// A second message goes to the same chat.
	alice.send(&xmpp.Message{ID: "pm2", Type: xmpp.TypeChat, To: xmpp.A(occ(muc, "Mary")), Body: "about tomorrow"})
	mary.waitEvent("Alice's second private message", wasEncrypted(chat, puppet, "about tomorrow"))

	// Mary is renamed: the chat follows her new occupant JID both ways.
	mark = alice.mark()
	if err := mary.c.SetDisplayName(ctx(t), "Mary R"); err != nil {
		t.Fatal(err)
	}
	alice.waitFrom(mark, "Mary's nick change", isPresence(occ(muc, "Mary R"), ""))
	alice.send(&xmpp.Message{ID: "pm2b", Type: xmpp.TypeChat, To: xmpp.A(occ(muc, "Mary R")), Body: "new name?"})
	mary.waitEvent("Alice's message to the new nick, in the same chat", wasEncrypted(chat, puppet, "new name?"))
	mark = alice.mark()
	mary.say(chat, "yes, new name")
	alice.waitFrom(mark, "Mary's answer from her new nick", isPrivate(occ(muc, "Mary R"), "yes, new name"))

	// Between XMPP occupants the room relays it.
	mark = alice.mark()
	bob.send(&xmpp.Message{ID: "pm3", Type: xmpp.TypeChat, To: xmpp.A(occ(muc, "Alice")), Body: "hi Alice, Bob here"})
	alice.waitFrom(mark, "Bob's private message", isPrivate(occ(muc, "Bob"), "hi Alice, Bob here"))

	// Someone not in the room may not.
	carol := v.newXMPPClient(t, "carol", "pm")
	mark = carol.mark()
	carol.send(&xmpp.Message{ID: "pm4", Type: xmpp.TypeChat, To: xmpp.A(occ(muc, "Mary R")), Body: "hello?"})
	if cond := carol.messageError(mark, "pm4"); cond != stanza.NotAcceptable {
		t.Errorf("a non-occupant's private message: %q; want not-acceptable", cond)
	}

	// The room admin turns them off: refused, and disco#info says so.
	mary.command(room, "allow-pm off", "Private messages in this room: off")
	mark = alice.mark()
	alice.send(&xmpp.Message{ID: "pm5", Type: xmpp.TypeChat, To: xmpp.A(occ(muc, "Mary R")), Body: "still there?"})
	if cond := alice.messageError(mark, "pm5"); cond != stanza.NotAllowed {
		t.Errorf("a private message with them off: %q; want not-allowed", cond)
	}
	info := decodeInfo(t, alice.iq(muc, xmpp.TypeGet, &xmpp.DiscoInfo{}))
	if !slices.ContainsFunc(info.Forms[0].Fields, func(f xmpp.FormField) bool {
		return f.Var == "muc#roomconfig_allowpm" && slices.Equal(f.Values, []string{"none"})
	}) {
		t.Errorf("disco#info with private messages off: %+v; want muc#roomconfig_allowpm none", info.Forms)
	}
	mary.command(room, "allow-pm on", "Private messages in this room: on")
}

// TestE2ERemotePrivateMessages: in a MUC hosted elsewhere, another
// occupant's private message to a Matrix user's occupant opens a private
// chat with that occupant's puppet; the answer goes back through the room
// to them.
func TestE2ERemotePrivateMessages(t *testing.T) {
	v := need(t)
	alice := v.newXMPPClient(t, "alice", "rpm")
	room := v.remoteRoom(t, alice, "rpm", "Alice")
	mary := v.newEncryptedUser(t, "mary", "Mary")
	mark := alice.mark()
	portalRoom := mary.joinRemote(room)
	alice.waitFrom(mark, "Mary joining the MUC", isPresence(occ(room, "Mary"), ""))
	alicePuppet := mary.puppetNamed(portalRoom, "Alice")

	alice.send(&xmpp.Message{ID: "rpm1", Type: xmpp.TypeChat, To: xmpp.A(occ(room, "Mary")), Body: "Mary, a word?",
		MUCUser: &xmpp.MUCUser{}})
	invite := mary.waitEvent("the invitation to a private chat", isDirectInvite(mary.id, alicePuppet))
	chat := invite.RoomID
	mary.join(chat)
	mary.waitEvent("Alice's private message", wasEncrypted(chat, alicePuppet, "Mary, a word?"))
	for _, body := range mary.messagesFrom(portalRoom, alicePuppet) {
		if body == "Mary, a word?" {
			t.Error("the private message also reached the portal room")
		}
	}

	mark = alice.mark()
	mary.say(chat, "sure, Alice")
	alice.waitFrom(mark, "Mary's private answer through the room", isPrivate(occ(room, "Mary"), "sure, Alice"))
	alice.send(&xmpp.Message{ID: "rpm2", Type: xmpp.TypeChat, To: xmpp.A(occ(room, "Mary")), Body: "thanks",
		MUCUser: &xmpp.MUCUser{}})
	mary.waitEvent("Alice's second private message, in the same chat", wasEncrypted(chat, alicePuppet, "thanks"))

	// Alice changes her nick in the room: the chat follows her.
	mark = alice.mark()
	alice.send(&xmpp.Presence{To: xmpp.A(occ(room, "Alicia"))})
	alice.waitFrom(mark, "Alice's new nick", isPresence(occ(room, "Alicia"), ""))
	mary.waitEvent("Alice's puppet renamed", func(evt *event.Event) bool {
		return evt.RoomID == portalRoom && evt.Type == event.StateMember && evt.StateKey != nil &&
			*evt.StateKey == alicePuppet.String() && evt.Content.AsMember().Displayname == "Alicia"
	})
	alice.send(&xmpp.Message{ID: "rpm3", Type: xmpp.TypeChat, To: xmpp.A(occ(room, "Mary")), Body: "it's Alicia now",
		MUCUser: &xmpp.MUCUser{}})
	mary.waitEvent("Alicia's message, in the same chat", wasEncrypted(chat, alicePuppet, "it's Alicia now"))
	mark = alice.mark()
	mary.say(chat, "hello Alicia")
	alice.waitFrom(mark, "Mary's answer to the new nick", isPrivate(occ(room, "Mary"), "hello Alicia"))
}

// isPrivate matches a private message through a room: a chat message from
// an occupant JID with a body.
func isPrivate(from jid.JID, body string) func(any) bool {
	return func(v any) bool {
		m, ok := v.(*xmpp.Message)
		return ok && m.Type == xmpp.TypeChat && m.From.Equal(from) && m.Body == body
	}
}
