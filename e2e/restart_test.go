//go:build e2e

package e2e

import (
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/mxpp/mxpp/xmpp"
)

// TestE2EBridgeKilled: the bridge is killed with SIGKILL and started again;
// it carries on with the same portal, puppets and occupants, and a Matrix
// message sent while it was down still reaches XMPP.
func TestE2EBridgeKilled(t *testing.T) {
	v := need(t)
	mary, room, muc := v.newRoom(t, "Mary", "phoenix", "Phoenix", "")
	alice := v.newXMPPClient(t, "alice", "k")
	bob := v.newXMPPClient(t, "bob", "k")
	for _, c := range []*xmppClient{alice, bob} {
		c.mustJoin(muc, c.jid.Localpart())
	}
	mary.waitEvent("bob's puppet", isMembership(room, puppetOf("bob@"+v.XMPPDomain), event.MembershipJoin))

	v.StopBridge(true)
	aliceMark, bobMark := alice.mark(), bob.mark()
	mary.say(room, "sent while the bridge was down")
	if err := v.startBridge(); err != nil {
		t.Fatal(err)
	}

	// The occupants are still in: they can talk without joining again.
	alice.groupchat(muc, "after the restart")
	mary.waitEvent("alice after restart", isMessage(room, puppetOf("alice@"+v.XMPPDomain), "after the restart"))
	bob.waitFrom(bobMark, "alice's message after restart", isGroupchat(occ(muc, "alice"), "after the restart"))
	// The homeserver redelivers what the dead bridge did not acknowledge.
	alice.waitFrom(aliceMark, "message sent during the outage", isGroupchat(occ(muc, "Mary"), "sent while the bridge was down"))
	mary.say(room, "welcome back")
	bob.waitFrom(bobMark, "message after restart", isGroupchat(occ(muc, "Mary"), "welcome back"))

	// A newcomer sees the occupants that joined before the restart.
	carol := v.newXMPPClient(t, "carol", "k")
	res := carol.join(muc, "carol")
	if res.err != nil {
		t.Fatal(res.err.Error)
	}
	if !hasOccupant(res.occupants, occ(muc, "alice")) || !hasOccupant(res.occupants, occ(muc, "bob")) {
		t.Errorf("after the restart, the join list %v lacks alice or bob", res.occupants)
	}
	// Their nicks are still theirs.
	if res := v.newXMPPClient(t, "dave", "k").join(muc, "alice"); res.err == nil {
		t.Error("a newcomer took the nick of an occupant from before the restart")
	}
}

// TestE2EOccupantGoneWhileBridgeDown: a client that disconnects while the
// bridge is down is noticed after the restart (its leave was lost), and its
// puppet leaves Matrix.
func TestE2EOccupantGoneWhileBridgeDown(t *testing.T) {
	v := need(t)
	mary, room, muc := v.newRoom(t, "Mary", "ghosts", "Ghosts", "")
	erin := v.newXMPPClient(t, "erin", "gone")
	erin.mustJoin(muc, "Erin")
	puppet := puppetOf("erin@" + v.XMPPDomain)
	mary.waitEvent("erin's puppet", isMembership(room, puppet, event.MembershipJoin))

	v.StopBridge(true)
	erin.close() // Prosody's unavailable presence for erin goes nowhere
	if err := v.startBridge(); err != nil {
		t.Fatal(err)
	}
	mary.waitEvent("erin's puppet leaving after the restart", isMembership(room, puppet, event.MembershipLeave))
}

// TestE2EXMPPRestart: the XMPP server restarts; the component reconnects
// and users who come back can join again and chat.
func TestE2EXMPPRestart(t *testing.T) {
	v := need(t)
	mary, room, muc := v.newRoom(t, "Mary", "restart", "Restart", "")
	alice := v.newXMPPClient(t, "alice", "p")
	alice.mustJoin(muc, "Alice")

	v.restartXMPP(t)
	select {
	case <-alice.done:
	case <-time.After(10 * time.Second):
		t.Fatal("the client's connection outlived the server restart")
	}
	if err := v.WaitReady(60 * time.Second); err != nil {
		t.Fatal(err)
	}
	again := v.newXMPPClient(t, "alice", "p")
	again.mustJoin(muc, "Alice")
	mark := again.mark()
	again.groupchat(muc, "back after the server restart")
	mary.waitEvent("message after the server restart", isMessage(room, puppetOf("alice@"+v.XMPPDomain), "back after the server restart"))
	again.waitFrom(mark, "reflection", isGroupchat(occ(muc, "Alice"), "back after the server restart"))
	mary.say(room, "hello again")
	again.waitFrom(mark, "Matrix message after the server restart", isGroupchat(occ(muc, "Mary"), "hello again"))
}

// TestE2EVanishedOccupant: a session that stops answering the liveness
// pings of a quiet occupant is removed after a few checks, and its puppet
// leaves Matrix; an occupant that answers stays.
func TestE2EVanishedOccupant(t *testing.T) {
	v := need(t)
	mary, room, muc := v.newRoom(t, "Mary", "vanish", "Vanish", "")
	frank := v.newXMPPClient(t, "frank", "v")
	dave := v.newXMPPClient(t, "dave", "v")
	for _, c := range []*xmppClient{frank, dave} {
		c.mustJoin(muc, c.jid.Localpart())
	}
	frank.ignorePings.Store(true)
	mary.waitEvent("frank's puppet leaving", isMembership(room, puppetOf("frank@"+v.XMPPDomain), event.MembershipLeave))
	// Dave was quiet as long, but answers: still in.
	mark := dave.mark()
	mary.say(room, "dave?")
	dave.waitFrom(mark, "message to the remaining occupant", isGroupchat(occ(muc, "Mary"), "dave?"))
	if mary.seen(isMembership(room, puppetOf("dave@"+v.XMPPDomain), event.MembershipLeave)) {
		t.Error("an occupant that answers pings was removed")
	}
}

// TestE2EDirectChatSurvivesRestart: a direct chat goes on after the bridge
// was killed, and what the Matrix user wrote meanwhile still arrives.
func TestE2EDirectChatSurvivesRestart(t *testing.T) {
	v := need(t)
	bob := v.newMatrixUser(t, "bob", "Bob")
	grace := v.newXMPPClient(t, "grace", "restart")
	puppet, bobJID := puppetOf("grace@"+v.XMPPDomain), v.contactJID(bob.id)
	resp, err := bob.c.CreateRoom(ctx(t), &mautrix.ReqCreateRoom{Preset: "trusted_private_chat", IsDirect: true, Invite: []id.UserID{puppet}})
	if err != nil {
		t.Fatal(err)
	}
	room := resp.RoomID
	bob.waitEvent("the bot joining", isMembership(room, botID(), event.MembershipJoin))
	mark := grace.mark()
	bob.say(room, "before")
	grace.waitFrom(mark, "bob's message", isChat(bobJID, "before"))

	v.StopBridge(true)
	bob.say(room, "while the bridge was down")
	if err := v.startBridge(); err != nil {
		t.Fatal(err)
	}
	grace.waitFrom(mark, "the message sent during the outage", isChat(bobJID, "while the bridge was down"))
	grace.send(&xmpp.Message{ID: "r1", Type: xmpp.TypeChat, To: xmpp.A(bobJID), Body: "back"})
	bob.waitEvent("grace's answer after the restart", isMessage(room, puppet, "back"))
}
