//go:build e2e

package e2e

import (
	"fmt"
	"strings"
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"mellium.im/xmpp/jid"

	"github.com/mxpp/mxpp/xmpp"
)

// setPresence sets a Matrix user's presence as a client does.
func (u *mxUser) setPresence(presence event.Presence, status string) {
	u.t.Helper()
	if err := u.c.SetPresence(ctx(u.t), mautrix.ReqPresence{Presence: presence, StatusMsg: status}); err != nil {
		u.t.Fatalf("%s setting presence: %v", u.id, err)
	}
}

// presenceFrom matches an available presence from one JID with a show and
// status.
func presenceFrom(from jid.JID, show, status string) func(any) bool {
	return func(v any) bool {
		p, ok := v.(*xmpp.Presence)
		return ok && p.Type == "" && p.From.Equal(from) && p.Show == show && p.Status == status
	}
}

// TestE2EPresence: a Matrix user's presence reaches XMPP users in a room
// and a contact who may see it, a flapping client does not flood the room,
// and an XMPP occupant's show and status become their puppet's presence.
func TestE2EPresence(t *testing.T) {
	v := need(t)
	mary, room, muc := v.newRoom(t, "Mary", "presence", "Presence", "")
	alice := v.newXMPPClient(t, "alice", "presence")
	alice.mustJoin(muc, "Alice")
	puppet := puppetOf("alice@" + v.XMPPDomain)
	mary.waitEvent("Alice's puppet", isMembership(room, puppet, event.MembershipJoin))
	maryOcc := occ(muc, "Mary")

	// Mary steps away: her occupant presence says so.
	mark := alice.mark()
	mary.setPresence(event.PresenceUnavailable, "In a meeting")
	alice.waitFrom(mark, "Mary away in the room", presenceFrom(maryOcc, "away", "In a meeting"))

	// Her client flaps: the room hears at most the first change and then,
	// after bridge.presence.min_interval, the newest.
	mark = alice.mark()
	for i := range 10 {
		p := event.PresenceOnline
		if i%2 == 1 {
			p = event.PresenceUnavailable
		}
		mary.setPresence(p, fmt.Sprintf("flap %d", i))
	}
	mary.setPresence(event.PresenceOnline, "Back")
	alice.waitFrom(mark, "Mary back in the room", presenceFrom(maryOcc, "", "Back"))
	var seen []string
	for _, st := range alice.since(mark) {
		if p, ok := st.(*xmpp.Presence); ok && p.From.Equal(maryOcc) {
			seen = append(seen, p.Show+"/"+p.Status)
		}
	}
	if len(seen) > 2 {
		t.Errorf("a flapping Matrix client sent the room %d presences %v; want at most 2", len(seen), seen)
	}

	// Alice asks to see Mary's presence; Mary allows it; Alice sees her as
	// she is, and then as she changes, up to going offline.
	maryJID := v.contactJID(mary.id)
	alice.sendRaw(`<iq type="get" id="roster1"><query xmlns="jabber:iq:roster"/></iq>`)
	mark = alice.mark()
	aliceBare := "alice@" + v.XMPPDomain
	alice.send(&xmpp.Presence{Type: "subscribe", To: xmpp.A(maryJID)})
	botChat := mary.waitEvent("the bot's chat", isDirectInvite(mary.id, botID())).RoomID
	mary.join(botChat)
	mary.waitEvent("the question", func(evt *event.Event) bool {
		return evt.RoomID == botChat && evt.Sender == botID() &&
			strings.Contains(evt.Content.AsMessage().Body, aliceBare+" wants to see your presence")
	})
	mary.ask(botChat, "allow "+aliceBare, "sees your presence now")
	alice.waitFrom(mark, "Mary's presence as a contact", func(v any) bool {
		p, ok := v.(*xmpp.Presence)
		return ok && p.Type == "" && p.From.Bare().Equal(maryJID) && p.Show == "" && p.Status == "Back"
	})
	mark = alice.mark()
	mary.setPresence(event.PresenceUnavailable, "Lunch")
	alice.waitFrom(mark, "Mary away as a contact", presenceFrom(maryJID, "away", "Lunch"))
	mark = alice.mark()
	mary.setPresence(event.PresenceOffline, "Gone home")
	st, _ := alice.waitFrom(mark, "Mary offline as a contact", func(v any) bool {
		p, ok := v.(*xmpp.Presence)
		return ok && p.Type == xmpp.TypeUnavailable && p.From.Equal(maryJID) && p.Status == "Gone home"
	})
	if idle := st.(*xmpp.Presence).Idle; idle == nil || idle.Since.IsZero() {
		t.Errorf("Mary's offline presence carries no last activity (XEP-0319): %+v", st)
	}
	// In the room she is still a member: extended away, not gone.
	alice.waitFrom(mark, "Mary offline in the room", presenceFrom(maryOcc, "xa", "Gone home"))

	// Alice's own show and status become her puppet's presence.
	alice.send(&xmpp.Presence{To: xmpp.A(occ(muc, "Alice")), Show: "dnd", Status: "Busy"})
	waitFor(t, "Alice's puppet unavailable and busy", func() bool {
		resp, err := mary.c.GetPresence(ctx(t), puppet)
		return err == nil && resp.Presence == event.PresenceUnavailable && resp.StatusMsg == "Busy"
	})
	alice.send(&xmpp.Presence{To: xmpp.A(occ(muc, "Alice")), Status: "Free"})
	waitFor(t, "Alice's puppet online", func() bool {
		resp, err := mary.c.GetPresence(ctx(t), puppet)
		return err == nil && resp.Presence == event.PresenceOnline && resp.StatusMsg == "Free"
	})

	// In a MUC hosted elsewhere, the same both ways: Mary's occupant joins
	// as she is (offline: extended away) and tells her changes; Dave's
	// show and status become her room puppet's presence.
	dave := v.newXMPPClient(t, "dave", "presence")
	remote := v.remoteRoom(t, dave, "presence", "Dave")
	mark = dave.mark()
	portalRoom := mary.joinRemote(remote)
	dave.waitFrom(mark, "Mary joining the MUC as she is", presenceFrom(occ(remote, "Mary"), "xa", "Gone home"))
	mark = dave.mark()
	mary.setPresence(event.PresenceOnline, "Back again")
	dave.waitFrom(mark, "Mary back in the MUC", presenceFrom(occ(remote, "Mary"), "", "Back again"))
	davePuppet := mary.puppetNamed(portalRoom, "Dave")
	dave.send(&xmpp.Presence{To: xmpp.A(occ(remote, "Dave")), Show: "away", Status: "Coffee"})
	waitFor(t, "Dave's puppet away", func() bool {
		resp, err := mary.c.GetPresence(ctx(t), davePuppet)
		return err == nil && resp.Presence == event.PresenceUnavailable && resp.StatusMsg == "Coffee"
	})
}

// TestE2ESubscriptionModes: with bridge.subscriptions auto a contact
// request is approved at once, without asking the Matrix user; with deny
// it is refused. (ask, the default, is in TestE2EDirectFromMatrix and
// TestE2EPresence.)
func TestE2ESubscriptionModes(t *testing.T) {
	v := need(t)
	ivan := v.newMatrixUser(t, "ivan", "Ivan")
	ivanJID := v.contactJID(ivan.id)
	frank := v.newXMPPClient(t, "frank", "subs")
	frank.sendRaw(`<iq type="get" id="roster1"><query xmlns="jabber:iq:roster"/></iq>`)
	answer := func(typ string) func(any) bool {
		return func(v any) bool {
			p, ok := v.(*xmpp.Presence)
			return ok && p.Type == typ && p.From.Bare().Equal(ivanJID)
		}
	}

	v.restartBridgeEditing(t, `(?m)^  exposure: (.*)$`, "  exposure: $1\n  subscriptions: auto")
	t.Cleanup(func() { v.restartBridgeEditing(t, `(?m)^  subscriptions: .*\n`, "") })
	mark := frank.mark()
	frank.send(&xmpp.Presence{Type: "subscribe", To: xmpp.A(ivanJID)})
	frank.waitFrom(mark, "the approval under auto", answer("subscribed"))
	frank.waitFrom(mark, "Ivan's presence under auto", answer(""))
	if ivan.seen(func(evt *event.Event) bool { return evt.Sender == botID() }) {
		t.Error("under auto the bot asked Ivan")
	}

	v.restartBridgeEditing(t, `(?m)^  subscriptions: auto$`, "  subscriptions: deny")
	frank.send(&xmpp.Presence{Type: "unsubscribe", To: xmpp.A(ivanJID)})
	mark = frank.mark()
	frank.send(&xmpp.Presence{Type: "subscribe", To: xmpp.A(ivanJID)})
	frank.waitFrom(mark, "the refusal under deny", answer("unsubscribed"))
}
