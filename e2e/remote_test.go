//go:build e2e

package e2e

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"image/color"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/format"
	"maunium.net/go/mautrix/id"
	"mellium.im/xmpp/jid"

	"github.com/mxpp/mxpp/xmpp"
)

// remoteRoom makes a room on the XMPP server's own MUC service, hosted
// there and not by the bridge, by joining it as its first occupant (its
// owner); it returns the room's JID.
func (v *env) remoteRoom(t *testing.T, owner *xmppClient, name, nick string) jid.JID {
	t.Helper()
	userSeq.Lock()
	userSeq.n++
	room := jid.MustParse(fmt.Sprintf("%s%d@%s", name, userSeq.n, v.MUCDomain))
	userSeq.Unlock()
	owner.mustJoin(room, nick)
	return room
}

// remoteAlias is the alias of the portal into a MUC hosted elsewhere, on
// the main environment's homeserver.
func remoteAlias(room jid.JID) id.RoomAlias {
	return id.RoomAlias("#_xmpp_" + id.EncodeUserLocalpart(room.String()) + ":" + e.HSDomain)
}

// remoteAlias is that alias on the user's homeserver.
func (u *mxUser) remoteAlias(room jid.JID) id.RoomAlias {
	return id.RoomAlias("#_xmpp_" + id.EncodeUserLocalpart(room.String()) + ":" + u.id.Homeserver())
}

// joinRemote has a Matrix user join a MUC hosted elsewhere with the bot's
// join command and accept the invitation; it returns the portal room.
func (u *mxUser) joinRemote(room jid.JID) id.RoomID {
	u.t.Helper()
	u.ask(u.directChat(), "join "+room.String(), u.remoteAlias(room).String())
	resolved, err := u.c.ResolveAlias(ctx(u.t), u.remoteAlias(room))
	if err != nil {
		u.t.Fatalf("resolving the portal's alias %s: %v", u.remoteAlias(room), err)
	}
	u.waitEvent("the invitation to the portal of "+room.String(), isMembership(resolved.RoomID, u.id, event.MembershipInvite))
	u.join(resolved.RoomID)
	return resolved.RoomID
}

// puppetNamed waits for a puppet to join a room under a display name
// (another than the user) and returns it.
func (u *mxUser) puppetNamed(room id.RoomID, name string) id.UserID {
	u.t.Helper()
	return id.UserID(*u.waitEvent("the puppet of "+name, func(evt *event.Event) bool {
		return evt.RoomID == room && evt.Type == event.StateMember && evt.StateKey != nil && *evt.StateKey != u.id.String() &&
			evt.Content.AsMember().Membership == event.MembershipJoin && evt.Content.AsMember().Displayname == name
	}).StateKey)
}

// isFrom matches a Matrix message event by sender, in a room.
func isFrom(room id.RoomID, sender id.UserID) func(*event.Event) bool {
	return func(evt *event.Event) bool {
		return evt.RoomID == room && evt.Sender == sender && evt.Type == event.EventMessage
	}
}

// count returns how many events of a room's timeline match.
func (u *mxUser) count(room id.RoomID, match func(*event.Event) bool) int {
	u.t.Helper()
	resp, err := u.c.Messages(ctx(u.t), room, "", "", mautrix.DirectionBackward, nil, 1000)
	if err != nil {
		u.t.Fatalf("reading the timeline of %s: %v", room, err)
	}
	n := 0
	for _, evt := range resp.Chunk {
		evt.RoomID = room
		_ = evt.Content.ParseRaw(evt.Type)
		if match(evt) {
			n++
		}
	}
	return n
}

// TestE2ERemoteMUC: Matrix users join a MUC hosted by the XMPP server (not
// by the bridge) through a portal room, each as an occupant of its own;
// the other occupants appear on Matrix as puppets; messages cross both ways
// once, with formatting, replies, edits and the subject; a nick change is
// a new name for the same puppet; leaving the room leaves the MUC.
func TestE2ERemoteMUC(t *testing.T) {
	v := need(t)
	alice := v.newXMPPClient(t, "alice", "remote")
	room := v.remoteRoom(t, alice, "team", "Alice")

	// Mary opens the portal with the bot and accepts its invitation.
	mary := v.newMatrixUser(t, "mary", "Mary Q")
	mark := alice.mark()
	portal := mary.joinRemote(room)
	st, _ := alice.waitFrom(mark, "Mary joining the MUC", isPresence(occ(room, "Mary Q"), ""))
	if p := st.(*xmpp.Presence); p.MUCUser == nil {
		t.Fatalf("Mary's presence in the MUC has no MUC payload: %+v", p)
	}

	// Alice stands in the portal room as a puppet of this room: the room
	// is semi-anonymous, so no puppet carries her real JID.
	alicePuppet := mary.puppetNamed(portal, "Alice")
	if strings.Contains(string(alicePuppet), "alice=40") || !strings.HasPrefix(alicePuppet.Localpart(), "_xmpp_") {
		t.Errorf("Alice's puppet in a semi-anonymous room is %s; want a room puppet without her JID", alicePuppet)
	}

	// XMPP -> Matrix, with styling.
	alice.groupchat(room, "hello *Matrix*")
	msg := mary.waitEvent("Alice's message", isMessage(portal, alicePuppet, "hello *Matrix*"))
	if c := msg.Content.AsMessage(); c.FormattedBody != "hello <strong>Matrix</strong>" {
		t.Errorf("styling arrived as %q", c.FormattedBody)
	}

	// Matrix -> XMPP, with formatting; the reflection does not come back
	// to Matrix.
	mark = alice.mark()
	content := format.RenderMarkdown("hi **Alice**", true, false)
	resp, err := mary.c.SendMessageEvent(ctx(t), portal, event.EventMessage, &content)
	if err != nil {
		t.Fatal(err)
	}
	st, _ = alice.waitFrom(mark, "Mary's message", isGroupchat(occ(room, "Mary Q"), "hi *Alice*"))
	maryMsg := st.(*xmpp.Message)
	// Replies name the room's stanza-id (XEP-0461); a room without an
	// archive (ejabberd's default) gives none, and clients name the id.
	maryRef := maryMsg.ID
	if maryMsg.StanzaID != nil && maryMsg.StanzaID.By == room.String() {
		maryRef = maryMsg.StanzaID.ID
	} else if v.XMPPServerName() == "prosody" {
		t.Fatalf("Mary's message reached Alice without the room's stanza-id (Prosody with muc_mam gives one): %+v", maryMsg)
	}

	// Mentions both ways, and an emote.
	alice.groupchat(room, "Mary Q: look here")
	mention := mary.waitEvent("Alice's mention", isMessage(portal, alicePuppet, "Mary Q: look here"))
	if c := mention.Content.AsMessage(); !strings.Contains(c.FormattedBody, "https://matrix.to/#/"+mary.id.String()) ||
		c.Mentions == nil || !slices.Contains(c.Mentions.UserIDs, mary.id) {
		t.Errorf("Alice's mention of Mary arrived as %q, mentions %+v", c.FormattedBody, c.Mentions)
	}
	mark = alice.mark()
	pill := &event.MessageEventContent{MsgType: event.MsgEmote, Body: "waves at Alice", Format: event.FormatHTML,
		FormattedBody: `waves at <a href="https://matrix.to/#/` + alicePuppet.String() + `">Alice</a>`}
	if _, err = mary.c.SendMessageEvent(ctx(t), portal, event.EventMessage, pill); err != nil {
		t.Fatal(err)
	}
	st, _ = alice.waitFrom(mark, "Mary's emote with a mention", isGroupchat(occ(room, "Mary Q"), "/me waves at Alice"))
	if refs := st.(*xmpp.Message).References; len(refs) != 1 || refs[0].URI != xmpp.URI(occ(room, "Alice"), "") {
		t.Errorf("the mention of Alice went out as %+v", refs)
	}

	// A second Matrix user, by the alias: two of our occupants get every
	// message, and each reaches Matrix once.
	bob := v.newMatrixUser(t, "bob", "Bob")
	mark = alice.mark()
	if _, err = bob.c.JoinRoom(ctx(t), remoteAlias(room).String(), nil); err != nil {
		t.Fatalf("joining the portal by its alias: %v", err)
	}
	alice.waitFrom(mark, "Bob joining the MUC", isPresence(occ(room, "Bob"), ""))
	alice.groupchat(room, "two of you")
	mary.waitEvent("the message to both", isMessage(portal, alicePuppet, "two of you"))
	bob.waitEvent("the message to both", isMessage(portal, alicePuppet, "two of you"))

	// A reply by the room's stanza-id, and a correction.
	reply := xmpp.RandomID()
	alice.send(&xmpp.Message{ID: reply, Type: xmpp.TypeGroupchat, To: xmpp.A(room), Body: "> Mary Q: hi\nindeed",
		Reply:     &xmpp.Reply{ID: maryRef, To: xmpp.A(occ(room, "Mary Q"))},
		Fallbacks: []xmpp.Fallback{{For: xmpp.NSReply, Bodies: []xmpp.FallbackBody{{Start: new(0), End: new(13)}}}}})
	r := mary.waitEvent("Alice's reply", isMessage(portal, alicePuppet, "indeed"))
	if got := r.Content.AsMessage().RelatesTo.GetReplyTo(); got != resp.EventID {
		t.Errorf("Alice's reply refers to %q; want Mary's %s", got, resp.EventID)
	}
	alice.send(&xmpp.Message{ID: xmpp.RandomID(), Type: xmpp.TypeGroupchat, To: xmpp.A(room), Body: "indeed!",
		Replace: &xmpp.Replace{ID: reply}})
	edit := mary.waitEvent("Alice's correction", func(evt *event.Event) bool {
		return evt.RoomID == portal && evt.Sender == alicePuppet && evt.Content.AsMessage().RelatesTo.GetReplaceID() == r.ID
	})
	if nc := edit.Content.AsMessage().NewContent; nc == nil || nc.Body != "indeed!" {
		t.Errorf("the correction's new content is %+v", nc)
	}
	mark = alice.mark()
	editContent := &event.MessageEventContent{MsgType: event.MsgText, Body: "* hi Alice!"}
	editContent.SetEdit(resp.EventID)
	editContent.NewContent = &event.MessageEventContent{MsgType: event.MsgText, Body: "hi Alice!"}
	if _, err = mary.c.SendMessageEvent(ctx(t), portal, event.EventMessage, editContent); err != nil {
		t.Fatal(err)
	}
	st, _ = alice.waitFrom(mark, "Mary's correction", isGroupchat(occ(room, "Mary Q"), "hi Alice!"))
	if m := st.(*xmpp.Message); m.Replace == nil || m.Replace.ID != resp.EventID.String() {
		t.Errorf("Mary's edit reached XMPP as %+v; want a correction of %s", m.Replace, resp.EventID)
	}

	// The subject is the room's topic.
	subject := "Sprint 12"
	alice.send(&xmpp.Message{ID: xmpp.RandomID(), Type: xmpp.TypeGroupchat, To: xmpp.A(room), Subject: &subject})
	mary.waitEvent("the topic", func(evt *event.Event) bool {
		return evt.RoomID == portal && evt.Type == event.StateTopic && evt.Content.AsTopic().Topic == subject
	})

	// A nick change is a new name for the same puppet.
	alice.send(&xmpp.Presence{To: xmpp.A(occ(room, "Alicia"))})
	mary.waitEvent("Alice's new name", func(evt *event.Event) bool {
		return evt.RoomID == portal && evt.Type == event.StateMember && evt.StateKey != nil && *evt.StateKey == alicePuppet.String() &&
			evt.Content.AsMember().Membership == event.MembershipJoin && evt.Content.AsMember().Displayname == "Alicia"
	})
	alice.groupchat(room, "still me")
	mary.waitEvent("a message under the new nick", isMessage(portal, alicePuppet, "still me"))

	// Every message crossed once: none twice (two occupants got each),
	// none of Mary's back as a puppet's.
	for body, want := range map[string]int{"hello *Matrix*": 1, "two of you": 1, "still me": 1} {
		if n := mary.count(portal, isMessage(portal, alicePuppet, body)); n != want {
			t.Errorf("%q is %d times in the portal room; want %d", body, n, want)
		}
	}
	if n := mary.count(portal, func(evt *event.Event) bool {
		return evt.Type == event.EventMessage && evt.Sender != mary.id && strings.Contains(evt.Content.AsMessage().Body, "hi")
	}); n != 0 {
		t.Errorf("Mary's messages came back into the portal room %d times", n)
	}

	// In a semi-anonymous room no real JID of an XMPP user is in any
	// event of the portal room, state or timeline.
	mary.noJIDIn(portal, "alice@"+v.XMPPDomain)

	// The bridge's lists and counts know the portal; its opening is in the
	// audit log.
	admin := v.matrixUser(t, "opsadmin", "Ops")
	dm := admin.directChat()
	admin.ask(dm, "rooms", room.String()+" — "+remoteAlias(room).String())
	admin.ask(dm, "status", "Portals into MUCs hosted elsewhere:")
	if !hasAudit(auditEntries(t, "open_remote"), map[string]any{"muc": room.String(), "by": mary.id, "result": "created"}) {
		t.Error("no audit entry for the portal's opening")
	}

	// Leaving the Matrix room leaves the MUC.
	mark = alice.mark()
	mary.leave(portal)
	alice.waitFrom(mark, "Mary leaving the MUC", isPresence(occ(room, "Mary Q"), xmpp.TypeUnavailable))
}

// TestE2ERemoteMUCNicksAndKicks: a nick taken in the MUC gets the suffix;
// standings in the MUC are power levels in the portal room; a kicked XMPP
// occupant's puppet is kicked on Matrix, and a Matrix moderator's kick of a
// puppet kicks the occupant; an occupant of ours kicked in the MUC is told
// why and leaves the portal room.
func TestE2ERemoteMUCNicksAndKicks(t *testing.T) {
	v := need(t)
	alice := v.newXMPPClient(t, "alice", "kicks")
	room := v.remoteRoom(t, alice, "kicks", "Alice")
	bobX := v.newXMPPClient(t, "bob", "kicks")
	bobX.mustJoin(room, "Sam")
	carol := v.newXMPPClient(t, "carol", "kicks")
	carol.mustJoin(room, "Carol")

	// Sam's nick is taken: the Matrix user called Sam joins as "Sam (Matrix)".
	sam := v.newMatrixUser(t, "sam", "Sam")
	mark := alice.mark()
	portal := sam.joinRemote(room)
	alice.waitFrom(mark, "Sam joining under another nick", isPresence(occ(room, "Sam (Matrix)"), ""))
	alicePuppet, bobPuppet, carolPuppet := sam.puppetNamed(portal, "Alice"), sam.puppetNamed(portal, "Sam"), sam.puppetNamed(portal, "Carol")

	// The room's owner is an admin of the portal room; Sam, made a
	// moderator in the MUC, a moderator there.
	hasLevel := func(u id.UserID, level int) func(*event.Event) bool {
		return func(evt *event.Event) bool {
			return evt.RoomID == portal && evt.Type == event.StatePowerLevels && evt.Content.AsPowerLevels().GetUserLevel(u) == level
		}
	}
	sam.waitEvent("the owner's level", hasLevel(alicePuppet, 100))
	if r := alice.iq(room, xmpp.TypeSet, &xmpp.MUCAdmin{Items: []xmpp.MUCItem{{Nick: "Sam (Matrix)", Role: xmpp.RoleModerator}}}); r.Type != xmpp.TypeResult {
		t.Fatalf("making Sam a moderator: %v", r.Error)
	}
	sam.waitEvent("Sam's moderator level", hasLevel(sam.id, 50))

	// Sam kicks Carol's puppet on Matrix: the room kicks Carol.
	mark = carol.mark()
	if _, err := sam.c.KickUser(ctx(t), portal, &mautrix.ReqKickUser{UserID: carolPuppet, Reason: "be nice"}); err != nil {
		t.Fatalf("kicking Carol's puppet: %v", err)
	}
	st, _ := carol.waitFrom(mark, "Carol kicked from the MUC", isRemoval(occ(room, "Carol"), xmpp.StatusKicked))
	if item := st.(*xmpp.Presence).MUCUser.Items; len(item) == 0 || item[0].Reason != "be nice" {
		t.Errorf("Carol's kick carries %+v; want the reason", item)
	}

	// A kicked XMPP occupant's puppet is kicked on Matrix, with the reason.
	kick := alice.iq(room, xmpp.TypeSet, &xmpp.MUCAdmin{Items: []xmpp.MUCItem{{Nick: "Sam", Role: xmpp.RoleNone, Reason: "off topic"}}})
	if kick.Type != xmpp.TypeResult {
		t.Fatalf("kicking Sam in the MUC: %v", kick.Error)
	}
	kicked := sam.waitEvent("the puppet kicked", isMembership(portal, bobPuppet, event.MembershipLeave))
	if reason := kicked.Content.AsMember().Reason; !strings.Contains(reason, "off topic") || !strings.Contains(reason, "Alice") {
		t.Errorf("the puppet's kick says %q; want who and why", reason)
	}
	// A banned one's puppet is banned.
	dave := v.newXMPPClient(t, "dave", "kicks")
	dave.mustJoin(room, "Dave")
	davePuppet := sam.puppetNamed(portal, "Dave")
	if r := alice.iq(room, xmpp.TypeSet, &xmpp.MUCAdmin{Items: []xmpp.MUCItem{{JID: xmpp.A(dave.jid.Bare()), Affiliation: xmpp.AffOutcast, Reason: "spam"}}}); r.Type != xmpp.TypeResult {
		t.Fatalf("banning Dave: %v", r.Error)
	}
	if reason := sam.waitEvent("the puppet banned", isMembership(portal, davePuppet, event.MembershipBan)).Content.AsMember().Reason; !strings.Contains(reason, "spam") {
		t.Errorf("the puppet's ban says %q; want why", reason)
	}

	// Our own occupant kicked: a notice says why, and the user leaves the
	// portal room (joining it again rejoins the MUC).
	kick = alice.iq(room, xmpp.TypeSet, &xmpp.MUCAdmin{Items: []xmpp.MUCItem{{Nick: "Sam (Matrix)", Role: xmpp.RoleNone, Reason: "testing"}}})
	if kick.Type != xmpp.TypeResult {
		t.Fatalf("kicking the Matrix user in the MUC: %v", kick.Error)
	}
	sam.waitEvent("the kick notice", func(evt *event.Event) bool {
		body := evt.Content.AsMessage().Body
		return evt.RoomID == portal && evt.Sender == botID() && strings.Contains(body, "kicked") && strings.Contains(body, "testing")
	})
	sam.waitEvent("Sam taken out of the portal room", isMembership(portal, sam.id, event.MembershipLeave))
	mark = alice.mark()
	sam.join(portal)
	alice.waitFrom(mark, "Sam back in the MUC", isPresence(occ(room, "Sam"), ""))
}

// remoteFaultStream runs a numbered stream both ways through a MUC hosted
// elsewhere while fault breaks something and recover repairs it. With an
// archive (Prosody's muc_mam) nothing is lost: what the room said while the
// bridge was away is caught up, with its own times, once and in order.
// Without one (ejabberd's rooms by default) the room says so, and nothing
// arrives twice or out of order.
func remoteFaultStream(t *testing.T, name string, fault, recover func()) {
	v := need(t)
	archive := v.XMPPServerName() == "prosody"
	reader := &streamParty{v: v, t: t, user: "alice", nick: "Alice"}
	talker := &streamParty{v: v, t: t, user: "bob", nick: "Bob"}
	userSeq.Lock()
	userSeq.n++
	reader.room = jid.MustParse(fmt.Sprintf("%s%d@%s", name, userSeq.n, v.MUCDomain))
	userSeq.Unlock()
	talker.room = reader.room
	for _, p := range []*streamParty{reader, talker} {
		if _, err := p.client(time.Now().Add(20 * time.Second)); err != nil {
			t.Fatal(err)
		}
	}
	mary := v.newMatrixUser(t, "mary", "Mary Q")
	portal := mary.joinRemote(reader.room)
	bob := mary.puppetNamed(portal, "Bob")
	maryOcc := occ(reader.room, "Mary Q")
	if _, err := reader.client(time.Now().Add(20 * time.Second)); err != nil {
		t.Fatal(err)
	}

	const n = 30
	sendThroughFault(t, talker, reader, mary, portal, n, fault, recover)
	fromMary := prefixed(mary.timelineFrom(portal, mary.id), "m-")
	deadline := time.Now().Add(90 * time.Second)
	var toMatrix, toXMPP error
	for time.Now().Before(deadline) {
		got := mary.timelineFrom(portal, bob)
		if archive {
			toMatrix = wantSequence(got, "x", n)
		} else {
			toMatrix = atMostOnceInOrder(got, "x", n)
		}
		live := reader.received(maryOcc, "m")
		toXMPP = inOrderOrStamped(live, fromMary)
		if toXMPP != nil && archive {
			toXMPP = inOrderOrStamped(reader.withArchive(live, maryOcc, "m"), fromMary)
		}
		if toMatrix == nil && toXMPP == nil {
			break
		}
		time.Sleep(time.Second)
	}
	if toMatrix != nil {
		t.Errorf("XMPP → Matrix: %v", toMatrix)
	}
	if toXMPP != nil {
		t.Errorf("Matrix → XMPP: %v", toXMPP)
	}
	if !archive {
		mary.waitEvent("the notice that messages may be missing", func(evt *event.Event) bool {
			return evt.RoomID == portal && evt.Sender == botID() && strings.Contains(evt.Content.AsMessage().Body, "may be missing")
		})
	}
	// Nothing more arrives late: a marker each way after the check.
	if err := talker.send("end", 1, 0); err != nil {
		t.Fatal(err)
	}
	mary.waitEvent("the XMPP marker", isMessage(portal, bob, "end-1"))
	if err := mary.sendMatrix(portal, "end", 1, 0); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the Matrix marker on XMPP", func() bool { return len(reader.received(maryOcc, "end")) > 0 })
	if err := atMostOnceInOrder(mary.timelineFrom(portal, bob), "x", n); err != nil {
		t.Errorf("XMPP → Matrix, later: %v", err)
	}
	got := reader.received(maryOcc, "m")
	if archive {
		got = reader.withArchive(got, maryOcc, "m")
	}
	if err := inOrderOrStamped(got, fromMary); err != nil {
		t.Errorf("Matrix → XMPP, later: %v", err)
	}
}

// atMostOnceInOrder checks that got holds prefix-i at most once each, in
// order: what a room without an archive allows.
func atMostOnceInOrder(got []string, prefix string, n int) error {
	err := wantSequence(got, prefix, n)
	if err == nil {
		return nil
	}
	var worse []string
	for _, p := range strings.Split(err.Error(), "; ") {
		if !strings.HasSuffix(p, " lost") {
			worse = append(worse, p)
		}
	}
	if len(worse) > 0 {
		return errors.New(strings.Join(worse, "; "))
	}
	return nil
}

func TestE2ERemoteMUCBridgeKilled(t *testing.T) {
	v := need(t)
	remoteFaultStream(t, "rkilled", func() { v.StopBridge(true); time.Sleep(2 * time.Second) }, func() {
		if err := v.startBridge(); err != nil {
			t.Fatal(err)
		}
	})
}

func TestE2ERemoteMUCLinkCut(t *testing.T) {
	v := need(t)
	remoteFaultStream(t, "rlinkcut", func() { v.compProxy.cut() }, func() {
		if err := v.WaitReady(30 * time.Second); err != nil {
			t.Fatal(err)
		}
	})
}

func TestE2ERemoteMUCXMPPRestart(t *testing.T) {
	v := need(t)
	remoteFaultStream(t, "rrestart", func() { v.restartXMPP(t) }, func() {
		if err := v.WaitReady(60 * time.Second); err != nil {
			t.Fatal(err)
		}
	})
}

// refIn is how a client names a message it got from a MUC: the room's
// stanza-id where there is one (XEP-0359), else the message's id.
func refIn(room jid.JID, m *xmpp.Message) string {
	if m.StanzaID != nil && m.StanzaID.By == room.String() {
		return m.StanzaID.ID
	}
	return m.ID
}

// TestE2ERemoteMUCRelations: reactions, retractions, typing and displayed
// markers cross both ways between a portal room and its MUC, naming
// messages as the room does.
func TestE2ERemoteMUCRelations(t *testing.T) {
	v := need(t)
	alice := v.newXMPPClient(t, "alice", "relations")
	room := v.remoteRoom(t, alice, "relations", "Alice")
	mary := v.newMatrixUser(t, "mary", "Mary Q")
	mark := alice.mark()
	portal := mary.joinRemote(room)
	alice.waitFrom(mark, "Mary joining", isPresence(occ(room, "Mary Q"), ""))
	puppet := mary.puppetNamed(portal, "Alice")

	// A message each way, named as the room names them.
	mark = alice.mark()
	maryMsg := mary.say(portal, "react to me")
	st, _ := alice.waitFrom(mark, "Mary's message", isGroupchat(occ(room, "Mary Q"), "react to me"))
	maryRef := refIn(room, st.(*xmpp.Message))
	mark = alice.mark()
	alice.groupchat(room, "and to me")
	st, _ = alice.waitFrom(mark, "the reflection of Alice's message", isGroupchat(occ(room, "Alice"), "and to me"))
	aliceRef := refIn(room, st.(*xmpp.Message))
	aliceMsg := mary.waitEvent("Alice's message", isMessage(portal, puppet, "and to me")).ID

	// Reactions, XMPP -> Matrix: a set, then a smaller one.
	xmppReactionsArrive(alice, room, mary, portal, puppet, maryMsg, maryRef)

	// Reactions, Matrix -> XMPP: each change sends Mary's whole set.
	mark = alice.mark()
	heart, err := mary.c.SendReaction(ctx(t), portal, aliceMsg, "❤️")
	if err != nil {
		t.Fatal(err)
	}
	isSet := func(keys ...string) func(any) bool { return isReactionSet(occ(room, "Mary Q"), aliceRef, keys...) }
	alice.waitFrom(mark, "Mary's ❤️", isSet("❤️"))
	if _, err = mary.c.RedactEvent(ctx(t), portal, heart.EventID); err != nil {
		t.Fatal(err)
	}
	alice.waitFrom(mark, "Mary's reactions taken back", isSet())

	// Typing both ways.
	if _, err = mary.c.UserTyping(ctx(t), portal, true, 20*time.Second); err != nil {
		t.Fatal(err)
	}
	alice.waitFrom(mark, "Mary composing", func(v any) bool {
		m, ok := v.(*xmpp.Message)
		return ok && m.From.Equal(occ(room, "Mary Q")) && m.Composing != nil
	})
	alice.send(&xmpp.Message{Type: xmpp.TypeGroupchat, To: xmpp.A(room), Composing: &xmpp.Empty{}})
	mary.waitEvent("Alice typing", func(evt *event.Event) bool {
		return evt.RoomID == portal && evt.Type == event.EphemeralEventTyping && slices.Contains(evt.Content.AsTyping().UserIDs, puppet)
	})

	// Displayed markers both ways.
	alice.send(&xmpp.Message{Type: xmpp.TypeGroupchat, To: xmpp.A(room), Displayed: &xmpp.Marker{ID: maryRef}})
	mary.waitEvent("Alice's read receipt", func(evt *event.Event) bool {
		if evt.RoomID != portal || evt.Type != event.EphemeralEventReceipt {
			return false
		}
		_, ok := (*evt.Content.AsReceipt())[maryMsg][event.ReceiptTypeRead][puppet]
		return ok
	})
	if err = mary.c.MarkRead(ctx(t), portal, aliceMsg); err != nil {
		t.Fatal(err)
	}
	alice.waitFrom(mark, "Mary's displayed marker", func(v any) bool {
		m, ok := v.(*xmpp.Message)
		return ok && m.From.Equal(occ(room, "Mary Q")) && m.Displayed != nil && m.Displayed.ID == aliceRef
	})

	// Retractions both ways: each deletes their own.
	alice.send(&xmpp.Message{Type: xmpp.TypeGroupchat, To: xmpp.A(room), Retract: &xmpp.Retract{ID: aliceRef}})
	mary.waitEvent("Alice's retraction", isRedactionOf(portal, puppet, aliceMsg))
	if _, err = mary.c.RedactEvent(ctx(t), portal, maryMsg); err != nil {
		t.Fatal(err)
	}
	alice.waitFrom(mark, "Mary's retraction", hasRetract(occ(room, "Mary Q"), maryRef, false))
}

// noJIDIn fails the test if a room's state or timeline mentions jid.
func (u *mxUser) noJIDIn(room id.RoomID, jid string) {
	u.t.Helper()
	state, err := u.c.State(ctx(u.t), room)
	if err != nil {
		u.t.Fatal(err)
	}
	resp, err := u.c.Messages(ctx(u.t), room, "", "", mautrix.DirectionBackward, nil, 1000)
	if err != nil {
		u.t.Fatal(err)
	}
	all := append([]*event.Event(nil), resp.Chunk...)
	for _, byKey := range state {
		for _, evt := range byKey {
			all = append(all, evt)
		}
	}
	for _, evt := range all {
		raw, _ := json.Marshal(evt)
		if strings.Contains(string(raw), jid) || strings.Contains(string(raw), id.EncodeUserLocalpart(jid)) {
			u.t.Errorf("an event of %s reveals %s: %s", room, jid, raw)
		}
	}
}

// configureRoom submits a MUC room configuration (XEP-0045 §10.2) as its
// owner, with the fields given.
func configureRoom(t *testing.T, owner *xmppClient, room jid.JID, fields map[string]string) {
	t.Helper()
	var b strings.Builder
	b.WriteString(`<iq type='set' id='cfg-` + xmpp.RandomID() + `' to='` + room.String() + `'><query xmlns='http://jabber.org/protocol/muc#owner'>` +
		`<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'><value>http://jabber.org/protocol/muc#roomconfig</value></field>`)
	for k, v := range fields {
		b.WriteString(`<field var='` + k + `'><value>` + v + `</value></field>`)
	}
	b.WriteString(`</x></query></iq>`)
	mark := owner.mark()
	owner.sendRaw(b.String())
	st, _ := owner.waitFrom(mark, "the configuration's answer", func(v any) bool {
		iq, ok := v.(*xmpp.IQ)
		return ok && iq.From.Equal(room) && (iq.Type == xmpp.TypeResult || iq.Type == xmpp.TypeError)
	})
	if iq := st.(*xmpp.IQ); iq.Type != xmpp.TypeResult {
		t.Fatalf("configuring %s: %v", room, iq.Error)
	}
}

// TestE2ERemoteMUCClosedRooms: a password room is opened with the bot's
// command and its password (which does not stay in the chat); a
// members-only room refuses a Matrix user who is not a member, with a
// notice, and lets them in once made one; in a non-anonymous room the
// other occupants are the puppets of their real JIDs.
func TestE2ERemoteMUCClosedRooms(t *testing.T) {
	v := need(t)
	alice := v.newXMPPClient(t, "alice", "closed")

	// Password.
	secret := v.remoteRoom(t, alice, "secret", "Alice")
	configureRoom(t, alice, secret, map[string]string{"muc#roomconfig_passwordprotectedroom": "1", "muc#roomconfig_roomsecret": "s3cret"})
	mary := v.newMatrixUser(t, "mary", "Mary Q")
	dm := mary.directChat()
	cmd := mary.say(dm, "join "+secret.String()+" s3cret")
	inv := mary.waitEvent("the invitation to the password room", func(evt *event.Event) bool {
		return evt.Type == event.StateMember && evt.StateKey != nil && *evt.StateKey == mary.id.String() &&
			evt.Content.AsMember().Membership == event.MembershipInvite && evt.Sender == botID() && evt.RoomID != dm
	})
	mary.waitEvent("the command with the password removed", isRedactionOf(dm, botID(), cmd))
	mark := alice.mark()
	mary.join(inv.RoomID)
	alice.waitFrom(mark, "Mary in the password room", isPresence(occ(secret, "Mary Q"), ""))
	if _, err := v.newMatrixUser(t, "bob", "Bob").c.JoinRoom(ctx(t), remoteAlias(secret).String(), nil); err == nil {
		t.Error("a user joined the portal of a password room by its alias, without an invitation")
	}

	// Members-only.
	club := v.remoteRoom(t, alice, "club", "Alice")
	configureRoom(t, alice, club, map[string]string{"muc#roomconfig_membersonly": "1"})
	portal := mary.joinRemote(club)
	mary.waitEvent("the refusal notice", func(evt *event.Event) bool {
		return evt.RoomID == portal && evt.Sender == botID() && strings.Contains(evt.Content.AsMessage().Body, "members-only")
	})
	maryJID := jid.MustParse(strings.TrimPrefix(mary.id.Localpart(), "") + "#" + v.HSDomain + "@" + v.CompDomain)
	if r := alice.iq(club, xmpp.TypeSet, &xmpp.MUCAdmin{Items: []xmpp.MUCItem{{JID: xmpp.A(maryJID), Affiliation: xmpp.AffMember}}}); r.Type != xmpp.TypeResult {
		t.Fatalf("making Mary a member: %v", r.Error)
	}
	mary.leave(portal)
	mark = alice.mark()
	mary.joinRemote(club)
	alice.waitFrom(mark, "Mary in the members-only room", isPresence(occ(club, "Mary Q"), ""))

	// Non-anonymous: Alice is the puppet of her own JID.
	open := v.remoteRoom(t, alice, "open", "Alice")
	configureRoom(t, alice, open, map[string]string{"muc#roomconfig_whois": "anyone"})
	portal = mary.joinRemote(open)
	mary.waitEvent("Alice as her own puppet", isMembership(portal, puppetOf("alice@"+v.XMPPDomain), event.MembershipJoin))
}

// TestE2ERemoteMUCFilesNamesBans: files cross both ways (a signed link to
// the Matrix file; a shared link fetched and uploaded); a new display name
// is a new nick in the MUC; a Matrix user banned in the MUC is told, leaves
// the portal room, and is refused with a notice when joining again.
func TestE2ERemoteMUCFilesNamesBans(t *testing.T) {
	v := need(t)
	alice := v.newXMPPClient(t, "alice", "files")
	room := v.remoteRoom(t, alice, "files", "Alice")
	mary := v.newMatrixUser(t, "mary", "Mary Q")
	mark := alice.mark()
	portal := mary.joinRemote(room)
	alice.waitFrom(mark, "Mary joining", isPresence(occ(room, "Mary Q"), ""))
	puppet := mary.puppetNamed(portal, "Alice")

	// Matrix -> XMPP: the file as a link through the bridge.
	pic := testPNG(t, color.RGBA{1, 2, 3, 255})
	up, err := mary.c.UploadBytes(ctx(t), pic, "image/png")
	if err != nil {
		t.Fatal(err)
	}
	mark = alice.mark()
	if _, err = mary.c.SendMessageEvent(ctx(t), portal, event.EventMessage, &event.MessageEventContent{
		MsgType: event.MsgImage, Body: "pic.png", FileName: "pic.png", URL: up.ContentURI.CUString(),
		Info: &event.FileInfo{MimeType: "image/png", Size: len(pic)}}); err != nil {
		t.Fatal(err)
	}
	st, _ := alice.waitFrom(mark, "the image link", func(v any) bool {
		m, ok := v.(*xmpp.Message)
		return ok && m.From.Equal(occ(room, "Mary Q")) && m.OOB != nil
	})
	resp, err := http.Get(st.(*xmpp.Message).OOB.URL)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !bytes.Equal(got, pic) {
		t.Errorf("fetching the link: %s, %d bytes", resp.Status, len(got))
	}

	// XMPP -> Matrix: a shared file becomes an upload.
	shared := testPNG(t, color.RGBA{200, 100, 0, 255})
	link := servePNG(t, shared, "/upload/abc/holiday.png")
	alice.send(&xmpp.Message{Type: xmpp.TypeGroupchat, To: xmpp.A(room), Body: link, OOB: &xmpp.OOB{URL: link}})
	evt := mary.waitEvent("the uploaded image", func(evt *event.Event) bool {
		return evt.RoomID == portal && evt.Sender == puppet && evt.Type == event.EventMessage && evt.Content.AsMessage().MsgType == event.MsgImage
	})
	if c := evt.Content.AsMessage(); c.Body != "holiday.png" || c.Info == nil || c.Info.Size != len(shared) {
		t.Errorf("the image arrived as %+v", c)
	}

	// A new display name is a new nick.
	mark = alice.mark()
	if err = mary.c.SetDisplayName(ctx(t), "Maria"); err != nil {
		t.Fatal(err)
	}
	alice.waitFrom(mark, "Mary's nick change", func(v any) bool {
		p, ok := v.(*xmpp.Presence)
		return ok && p.From.Equal(occ(room, "Mary Q")) && p.Type == xmpp.TypeUnavailable && hasStatus(p, xmpp.StatusNewNick)
	})
	alice.waitFrom(mark, "Maria", isPresence(occ(room, "Maria"), ""))

	// Banned: told, out of the portal room, refused when joining again.
	maryJID := jid.MustParse(mary.id.Localpart() + "#" + v.HSDomain + "@" + v.CompDomain)
	if r := alice.iq(room, xmpp.TypeSet, &xmpp.MUCAdmin{Items: []xmpp.MUCItem{{JID: xmpp.A(maryJID), Affiliation: xmpp.AffOutcast, Reason: "enough"}}}); r.Type != xmpp.TypeResult {
		t.Fatalf("banning Mary: %v", r.Error)
	}
	mary.waitEvent("the ban notice", func(evt *event.Event) bool {
		body := evt.Content.AsMessage().Body
		return evt.RoomID == portal && evt.Sender == botID() && strings.Contains(body, "banned") && strings.Contains(body, "enough")
	})
	mary.waitEvent("Mary out of the portal room", isMembership(portal, mary.id, event.MembershipLeave))
	mary.join(portal)
	mary.waitEvent("the refusal notice", func(evt *event.Event) bool {
		return evt.RoomID == portal && evt.Sender == botID() && strings.Contains(evt.Content.AsMessage().Body, "you are banned")
	})
}
