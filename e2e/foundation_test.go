//go:build e2e

package e2e

import (
	"strings"
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"github.com/mxpp/mxpp/xmpp"
)

// mucJID is the MUC of a room alias on the component.
func mucJID(t *testing.T, alias id.RoomAlias) jid.JID {
	t.Helper()
	local, server := splitAlias(alias)
	j, err := (xmpp.Scheme{Domain: jid.MustParse(e.CompDomain)}).RoomJID(local, server)
	if err != nil {
		t.Fatal(err)
	}
	return j
}

func splitAlias(a id.RoomAlias) (string, string) {
	s := string(a)[1:]
	for i := range s {
		if s[i] == ':' {
			return s[:i], s[i+1:]
		}
	}
	return s, ""
}

func occ(room jid.JID, nick string) jid.JID {
	j, err := room.WithResource(nick)
	if err != nil {
		panic(err)
	}
	return j
}

// TestE2EJoinAndChat: an XMPP user joins a public Matrix room's MUC, sees its
// members and subject, and messages cross in both directions with the echo
// XMPP clients need.
func TestE2EJoinAndChat(t *testing.T) {
	v := need(t)
	mary, room, muc := v.newRoom(t, "Mary Matrix", "lobby", "The Lobby", "Welcome to the lobby")

	alice := v.newXMPPClient(t, "alice", "phone")
	res := alice.join(muc, "Alice")
	if res.err != nil {
		t.Fatalf("join refused: %+v", res.err.Error)
	}
	var sawMary bool
	for _, p := range res.occupants {
		if p.From.Equal(occ(muc, "Mary Matrix")) {
			sawMary = true
			if it := p.MUCUser.Items; len(it) != 1 || it[0].JID.Localpart() == "" {
				t.Errorf("Mary's occupant item has no contact JID: %+v", it)
			}
		}
	}
	if !sawMary {
		t.Errorf("occupants on join %v do not include Mary Matrix", res.occupants)
	}
	for _, code := range []int{xmpp.StatusSelf, xmpp.StatusNonAnonymous} {
		if !hasStatus(res.self, code) {
			t.Errorf("self-presence lacks status %d", code)
		}
	}
	if got := *res.subject.Subject; got != "Welcome to the lobby" {
		t.Errorf("subject = %q; want the room topic", got)
	}
	// From who set it (XEP-0045 §8.1), so that clients can say who did.
	if !res.subject.From.Equal(occ(muc, "Mary Matrix")) || res.subject.OccupantID == nil {
		t.Errorf("subject from %s (occupant-id %+v); want Mary Matrix, who set the topic", res.subject.From, res.subject.OccupantID)
	}

	// The puppet joined Matrix with the MUC nick as its display name.
	puppet := puppetOf("alice@" + v.XMPPDomain)
	joinEvt := mary.waitEvent("puppet join", isMembership(room, puppet, event.MembershipJoin))
	if joinEvt.Content.AsMember().Displayname != "Alice" {
		mary.waitEvent("puppet display name Alice", func(evt *event.Event) bool {
			return isMembership(room, puppet, event.MembershipJoin)(evt) && evt.Content.AsMember().Displayname == "Alice"
		})
	}

	// XMPP -> Matrix, with the reflection carrying the sender's ids.
	mark := alice.mark()
	msgID := alice.groupchat(muc, "hello from xmpp")
	mary.waitEvent("alice's message", isMessage(room, puppet, "hello from xmpp"))
	st, _ := alice.waitFrom(mark, "reflection", isGroupchat(occ(muc, "Alice"), "hello from xmpp"))
	echo := st.(*xmpp.Message)
	if echo.ID != msgID || echo.OriginID == nil || echo.OriginID.ID != "o-"+msgID {
		t.Errorf("reflection id=%q origin-id=%+v; want %q and o-%s", echo.ID, echo.OriginID, msgID, msgID)
	}
	if echo.StanzaID == nil || echo.StanzaID.By != muc.String() || echo.StanzaID.ID == "" {
		t.Errorf("reflection stanza-id = %+v; want one by %s", echo.StanzaID, muc)
	}

	// Matrix -> XMPP, from the member's nick.
	mark = alice.mark()
	mary.say(room, "hello from matrix")
	alice.waitFrom(mark, "Mary's message", isGroupchat(occ(muc, "Mary Matrix"), "hello from matrix"))
}

// TestE2EJoinErrors: the refusals XEP-0045 asks for.
func TestE2EJoinErrors(t *testing.T) {
	v := need(t)
	mary, _, muc := v.newRoom(t, "Mary", "errors", "Errors", "")

	bob := v.newXMPPClient(t, "bob", "laptop")
	carol := v.newXMPPClient(t, "carol", "desk")

	// A message from a non-occupant.
	mark := carol.mark()
	id := carol.groupchat(muc, "am I in?")
	if cond := carol.messageError(mark, id); cond != stanza.NotAcceptable {
		t.Errorf("message from non-occupant: %s; want not-acceptable", cond)
	}

	bob.mustJoin(muc, "Bob")
	// A nick that is taken, by an XMPP occupant and by a Matrix member.
	for _, nick := range []string{"Bob", "bob", "Mary"} {
		res := carol.join(muc, nick)
		if res.err == nil || res.err.Error.Condition != stanza.Conflict {
			t.Errorf("join as %q: %+v; want conflict", nick, res.err)
		}
	}
	// Rooms that do not exist, or are not open.
	unknown := mucJID(t, id2alias("nosuchroom", v.HSDomain))
	if res := carol.join(unknown, "Carol"); res.err == nil || res.err.Error.Condition != stanza.ItemNotFound {
		t.Errorf("join of unknown room: %+v; want item-not-found", res.err)
	}
	private, err := mary.c.CreateRoom(ctx(t), &privateRoom)
	if err != nil {
		t.Fatal(err)
	}
	_ = private
	// A room nobody exposed to XMPP.
	if res := carol.join(mucJID(t, id2alias(privateRoom.RoomAliasName, v.HSDomain)), "Carol"); res.err == nil ||
		res.err.Error.Condition != stanza.Forbidden {
		t.Errorf("join of an unexposed room: %+v; want forbidden", res.err)
	}
}

func id2alias(local, server string) id.RoomAlias { return id.RoomAlias("#" + local + ":" + server) }

var privateRoom = mautrix.ReqCreateRoom{Preset: "private_chat", RoomAliasName: "secret", Name: "Secret"}

// TestE2EAliasCase: JIDs are case-folded, Matrix aliases are not; a room
// whose alias has capitals or non-ASCII letters is still found.
func TestE2EAliasCase(t *testing.T) {
	v := need(t)
	mary := v.newMatrixUser(t, "mary", "Mary")
	for _, local := range []string{"CamelCase", "Büro"} {
		room, alias := mary.createRoom(local, local, "")
		mary.expose(room)
		muc := mucJID(t, alias)
		if strings.ToLower(muc.Localpart()) != muc.Localpart() {
			t.Fatalf("MUC JID %s is not case-folded", muc)
		}
		alice := v.newXMPPClient(t, "alice", "case"+local[:1])
		res := alice.join(muc, "Alice")
		if res.err != nil {
			t.Fatalf("join of %s for %s: %v", muc, alias, res.err.Error)
		}
		alice.groupchat(muc, "found "+local)
		mary.waitEvent("message in "+alias.String(), isMessage(room, puppetOf("alice@"+v.XMPPDomain), "found "+local))
	}
}
