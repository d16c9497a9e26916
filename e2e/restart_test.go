//go:build e2e

package e2e

import (
	"bytes"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/mxpp/mxpp/database/dbtest"
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

// TestE2EMigrateDB: the operator stops the bridge, copies its SQLite
// database into PostgreSQL with -migrate-db and starts it on PostgreSQL:
// the portal, its occupants and the message map carry on (an XMPP user's
// correction of a message from before the move edits it on Matrix; a
// Matrix reply to it is a reply on XMPP). Afterwards the shared test
// bridge goes back to its SQLite file.
func TestE2EMigrateDB(t *testing.T) {
	v := need(t)
	if v.postgres() {
		t.Skip("the bridge runs on PostgreSQL already")
	}
	admin := os.Getenv(dbtest.EnvPostgres)
	if admin == "" {
		t.Skip("needs a PostgreSQL server: set " + dbtest.EnvPostgres)
	}
	mary, room, muc := v.newRoom(t, "Mary", "moving", "Moving", "")
	alice := v.newXMPPClient(t, "alice", "move")
	alice.mustJoin(muc, "Alice")
	puppet := puppetOf("alice@" + v.XMPPDomain)
	alice.send(&xmpp.Message{ID: "mv1", Type: xmpp.TypeGroupchat, To: xmpp.A(muc), Body: "befor the move", OriginID: &xmpp.OriginID{ID: "mv1"}})
	before := mary.waitEvent("the message before the move", isMessage(room, puppet, "befor the move"))

	uri, drop, err := dbtest.NewPostgres(admin)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(drop)
	v.StopBridge(false)
	sqliteConfig, err := os.ReadFile(v.Config)
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(v.Bin, "-c", v.Config, "-migrate-db", uri).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "Copied") {
		t.Fatalf("mxpp -migrate-db: %v\n%s", err, out)
	}
	pgConfig := regexp.MustCompile(`(?m)^  type: sqlite\n  uri: .*$`).ReplaceAll(sqliteConfig, []byte("  type: postgres\n  uri: "+uri))
	if bytes.Equal(pgConfig, sqliteConfig) {
		t.Fatal("the config names no SQLite database")
	}
	t.Cleanup(func() {
		v.StopBridge(false)
		if err := os.WriteFile(v.Config, sqliteConfig, 0o600); err != nil {
			t.Error(err)
		} else if err = v.startBridge(); err != nil {
			t.Errorf("starting the bridge on SQLite again: %v", err)
		}
	})
	if err = os.WriteFile(v.Config, pgConfig, 0o600); err != nil {
		t.Fatal(err)
	}
	if err = v.startBridge(); err != nil {
		t.Fatal(err)
	}

	// Alice is still in the room, and her message is still hers.
	alice.send(&xmpp.Message{ID: "mv2", Type: xmpp.TypeGroupchat, To: xmpp.A(muc), Body: "before the move", Replace: &xmpp.Replace{ID: "mv1"}})
	edit := mary.waitEvent("the correction after the move", func(evt *event.Event) bool {
		c := evt.Content.AsMessage()
		return evt.RoomID == room && evt.Sender == puppet && c.NewContent != nil && c.NewContent.Body == "before the move"
	})
	if got := edit.Content.AsMessage().RelatesTo.GetReplaceID(); got != before.ID {
		t.Errorf("the correction after the move edits %s; want %s, from before it", got, before.ID)
	}
	mark := alice.mark()
	content := &event.MessageEventContent{MsgType: event.MsgText, Body: "welcome to PostgreSQL"}
	content.RelatesTo = (&event.RelatesTo{}).SetReplyTo(before.ID)
	if _, err = mary.c.SendMessageEvent(ctx(t), room, event.EventMessage, content); err != nil {
		t.Fatal(err)
	}
	st, _ := alice.waitFrom(mark, "the reply after the move", func(v any) bool {
		m, ok := v.(*xmpp.Message)
		return ok && m.From.Equal(occ(muc, "Mary")) && strings.HasSuffix(m.Body, "welcome to PostgreSQL")
	})
	if r := st.(*xmpp.Message).Reply; r == nil || r.ID != before.ID.String() || !r.To.Equal(occ(muc, "Alice")) {
		t.Errorf("the reply after the move: %+v; want a reply to Alice's %s", r, before.ID)
	}
}
