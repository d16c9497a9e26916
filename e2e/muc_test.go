//go:build e2e

package e2e

import (
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"github.com/mxpp/mxpp/xmpp"
)

// setLevel changes one user's power level as a Matrix user.
func (u *mxUser) setLevel(room id.RoomID, target id.UserID, level int) {
	u.t.Helper()
	var pl event.PowerLevelsEventContent
	if err := u.c.StateEvent(ctx(u.t), room, event.StatePowerLevels, "", &pl); err != nil {
		u.t.Fatal(err)
	}
	pl.SetUserLevel(target, level)
	if _, err := u.c.SendStateEvent(ctx(u.t), room, event.StatePowerLevels, "", &pl); err != nil {
		u.t.Fatal(err)
	}
}

func itemOf(p *xmpp.Presence) xmpp.MUCItem {
	if p.MUCUser == nil || len(p.MUCUser.Items) == 0 {
		return xmpp.MUCItem{}
	}
	return p.MUCUser.Items[0]
}

func findPresence(ps []*xmpp.Presence, from jid.JID) *xmpp.Presence {
	for _, p := range ps {
		if p.From.Equal(from) {
			return p
		}
	}
	return nil
}

func adminSet(c *xmppClient, room jid.JID, item xmpp.MUCItem) *xmpp.IQ {
	c.t.Helper()
	return c.iq(room, xmpp.TypeSet, &xmpp.MUCAdmin{Items: []xmpp.MUCItem{item}})
}

// TestE2EPowerLevelsAndModeration: power levels show as affiliations and
// roles and follow changes; kicks and bans cross in both directions; what
// an XMPP occupant may do is what its puppet may do on Matrix.
func TestE2EPowerLevelsAndModeration(t *testing.T) {
	v := need(t)
	mary, room, muc := v.newRoom(t, "Mary", "mod", "Moderated", "Old topic")
	alice := v.newXMPPClient(t, "alice", "mod")
	bob := v.newXMPPClient(t, "bob", "mod")
	res := alice.join(muc, "Alice")
	if res.err != nil {
		t.Fatal(res.err.Error)
	}
	// The room's creator (power 100) is an owner and moderator.
	if p := findPresence(res.occupants, occ(muc, "Mary")); p == nil || itemOf(p).Affiliation != xmpp.AffOwner || itemOf(p).Role != xmpp.RoleModerator {
		t.Errorf("Mary's presence %+v; want owner/moderator", p)
	}
	if it := itemOf(res.self); it.Affiliation != xmpp.AffMember || it.Role != xmpp.RoleParticipant {
		t.Errorf("Alice's own item %+v; want member/participant", it)
	}
	if res.self.OccupantID == nil || res.self.OccupantID.ID == "" {
		t.Error("self-presence without an occupant-id")
	}
	bob.mustJoin(muc, "Bob")
	alicePuppet, bobPuppet := puppetOf("alice@"+v.XMPPDomain), puppetOf("bob@"+v.XMPPDomain)
	mary.waitEvent("bob's puppet", isMembership(room, bobPuppet, event.MembershipJoin))

	// Without power, an XMPP occupant can neither kick nor set the subject.
	if r := adminSet(bob, muc, xmpp.MUCItem{Nick: "Alice", Role: xmpp.RoleNone}); r.Type != xmpp.TypeError || r.Error.Condition != stanza.Forbidden {
		t.Errorf("kick without power: %s %v; want forbidden", r.Type, r.Error)
	}
	mark := bob.mark()
	subject := "New topic from Bob"
	bob.send(&xmpp.Message{ID: "subj1", Type: xmpp.TypeGroupchat, To: xmpp.A(muc), Subject: &subject})
	if c := bob.messageError(mark, "subj1"); c != stanza.Forbidden {
		t.Errorf("subject without power: %s; want forbidden", c)
	}

	// Mary makes Alice a moderator: Alice and Bob see her new standing.
	aliceMark, bobMark := alice.mark(), bob.mark()
	var st any
	mary.setLevel(room, alicePuppet, 50)
	st, _ = alice.waitFrom(aliceMark, "alice's new standing", func(v any) bool {
		p, ok := v.(*xmpp.Presence)
		return ok && p.From.Equal(occ(muc, "Alice")) && itemOf(p).Role == xmpp.RoleModerator
	})
	if p := st.(*xmpp.Presence); itemOf(p).Affiliation != xmpp.AffAdmin || !hasStatus(p, xmpp.StatusSelf) {
		t.Errorf("alice's own new presence %+v; want admin with 110", p.MUCUser)
	}
	bob.waitFrom(bobMark, "alice's new standing seen by bob", func(v any) bool {
		p, ok := v.(*xmpp.Presence)
		return ok && p.From.Equal(occ(muc, "Alice")) && itemOf(p).Role == xmpp.RoleModerator
	})

	// Now Alice may set the subject; it becomes the Matrix topic and every
	// occupant's subject.
	bobMark = bob.mark()
	subject = "Topic set from XMPP"
	alice.send(&xmpp.Message{Type: xmpp.TypeGroupchat, To: xmpp.A(muc), Subject: &subject})
	mary.waitEvent("topic from alice", func(evt *event.Event) bool {
		return evt.RoomID == room && evt.Type == event.StateTopic && evt.Sender == alicePuppet && evt.Content.AsTopic().Topic == subject
	})
	bob.waitFrom(bobMark, "new subject", func(v any) bool {
		m, ok := v.(*xmpp.Message)
		return ok && m.Subject != nil && *m.Subject == subject && m.From.Equal(occ(muc, "Alice"))
	})
	// Who joins now is told the subject by Alice, too.
	if res := v.newXMPPClient(t, "carol", "subject").join(muc, "Carol"); res.subject == nil || !res.subject.From.Equal(occ(muc, "Alice")) {
		t.Errorf("subject on join: %+v; want it from Alice, who set it", res.subject)
	}

	// Changing power levels needs more than a moderator has in Matrix's
	// default levels.
	if r := adminSet(alice, muc, xmpp.MUCItem{Nick: "Bob", Role: xmpp.RoleVisitor}); r.Type != xmpp.TypeError || r.Error.Condition != stanza.Forbidden {
		t.Errorf("revoking voice as a moderator: %s %v; want forbidden", r.Type, r.Error)
	}
	aliceMark = alice.mark()
	mary.setLevel(room, alicePuppet, 100)
	alice.waitFrom(aliceMark, "alice as owner", func(v any) bool {
		p, ok := v.(*xmpp.Presence)
		return ok && p.From.Equal(occ(muc, "Alice")) && itemOf(p).Affiliation == xmpp.AffOwner
	})

	// As an owner, Alice takes Bob's voice, then gives it back.
	if r := adminSet(alice, muc, xmpp.MUCItem{Nick: "Bob", Role: xmpp.RoleVisitor}); r.Type != xmpp.TypeResult {
		t.Fatalf("revoking voice: %v", r.Error)
	}
	bob.waitFrom(bobMark, "bob as visitor", func(v any) bool {
		p, ok := v.(*xmpp.Presence)
		return ok && p.From.Equal(occ(muc, "Bob")) && itemOf(p).Role == xmpp.RoleVisitor
	})
	if r := adminSet(alice, muc, xmpp.MUCItem{Nick: "Bob", Role: xmpp.RoleParticipant}); r.Type != xmpp.TypeResult {
		t.Fatalf("granting voice: %v", r.Error)
	}
	bob.waitFrom(bobMark, "bob's voice back", func(v any) bool {
		p, ok := v.(*xmpp.Presence)
		return ok && p.From.Equal(occ(muc, "Bob")) && itemOf(p).Role == xmpp.RoleParticipant
	})

	// Alice kicks Bob from XMPP: the kick happens on Matrix, and Bob is
	// removed with status 307 and the actor.
	bobMark, aliceMark = bob.mark(), alice.mark()
	if r := adminSet(alice, muc, xmpp.MUCItem{Nick: "Bob", Role: xmpp.RoleNone, Reason: "enough"}); r.Type != xmpp.TypeResult {
		t.Fatalf("kick by a moderator: %v", r.Error)
	}
	kick := mary.waitEvent("bob's puppet kicked", isMembership(room, bobPuppet, event.MembershipLeave))
	if kick.Sender != alicePuppet || kick.Content.AsMember().Reason != "enough" {
		t.Errorf("kick event from %s reason %q", kick.Sender, kick.Content.AsMember().Reason)
	}
	st, _ = bob.waitFrom(bobMark, "bob's removal", isPresence(occ(muc, "Bob"), xmpp.TypeUnavailable))
	if p := st.(*xmpp.Presence); !hasStatus(p, xmpp.StatusKicked) || !hasStatus(p, xmpp.StatusSelf) ||
		itemOf(p).Actor == nil || itemOf(p).Actor.Nick != "Alice" || itemOf(p).Reason != "enough" {
		t.Errorf("bob's removal presence %+v; want 307, 110, actor Alice, reason", p.MUCUser)
	}
	alice.waitFrom(aliceMark, "bob's removal seen by alice", isPresence(occ(muc, "Bob"), xmpp.TypeUnavailable))

	// Bob, kicked but not banned, may come back; Mary kicks him on
	// Matrix, which removes him from the MUC with 307 and her as actor.
	bob.mustJoin(muc, "Bob")
	mary.waitEvent("bob's puppet back", func(evt *event.Event) bool {
		return isMembership(room, bobPuppet, event.MembershipJoin)(evt) && evt.Timestamp > kick.Timestamp
	})
	bobMark = bob.mark()
	if _, err := mary.c.KickUser(ctx(t), room, &mautrix.ReqKickUser{UserID: bobPuppet, Reason: "out"}); err != nil {
		t.Fatal(err)
	}
	st, _ = bob.waitFrom(bobMark, "bob kicked on Matrix", isPresence(occ(muc, "Bob"), xmpp.TypeUnavailable))
	if p := st.(*xmpp.Presence); !hasStatus(p, xmpp.StatusKicked) || itemOf(p).Actor == nil || itemOf(p).Actor.Nick != "Mary" || itemOf(p).Reason != "out" {
		t.Errorf("bob's kick presence %+v; want 307, actor Mary, reason", p.MUCUser)
	}
	bob.mustJoin(muc, "Bob")
	// Mary bans Bob on Matrix: he is removed with 301; joining again is
	// refused.
	bobMark, aliceMark = bob.mark(), alice.mark()
	if _, err := mary.c.BanUser(ctx(t), room, &mautrix.ReqBanUser{UserID: bobPuppet, Reason: "rules"}); err != nil {
		t.Fatal(err)
	}
	st, _ = bob.waitFrom(bobMark, "bob's ban", isPresence(occ(muc, "Bob"), xmpp.TypeUnavailable))
	if p := st.(*xmpp.Presence); !hasStatus(p, xmpp.StatusBanned) || itemOf(p).Affiliation != xmpp.AffOutcast ||
		itemOf(p).Actor == nil || itemOf(p).Actor.Nick != "Mary" || itemOf(p).Reason != "rules" {
		t.Errorf("bob's ban presence %+v; want 301, outcast, actor Mary, reason", p.MUCUser)
	}
	alice.waitFrom(aliceMark, "bob's ban seen by alice", isPresence(occ(muc, "Bob"), xmpp.TypeUnavailable))
	if res := bob.join(muc, "Bob"); res.err == nil || res.err.Error.Condition != stanza.Forbidden {
		t.Errorf("a banned user's join: %+v; want forbidden", res.err)
	}
	// The ban list shows him; Alice, an owner, lifts the ban from XMPP.
	list := alice.iq(muc, xmpp.TypeGet, &xmpp.MUCAdmin{Items: []xmpp.MUCItem{{Affiliation: xmpp.AffOutcast}}})
	var outcasts xmpp.MUCAdmin
	if err := list.Payload.Decode(&outcasts); err != nil || len(outcasts.Items) != 1 || !outcasts.Items[0].JID.Equal(jid.MustParse("bob@"+v.XMPPDomain)) {
		t.Errorf("outcast list = %+v, %v; want bob", outcasts.Items, err)
	}
	if r := adminSet(alice, muc, xmpp.MUCItem{JID: xmpp.A(jid.MustParse("bob@" + v.XMPPDomain)), Affiliation: xmpp.AffNone}); r.Type != xmpp.TypeResult {
		t.Fatalf("unban: %v", r.Error)
	}
	mary.waitEvent("bob's unban", isMembership(room, bobPuppet, event.MembershipLeave))
	if res := bob.join(muc, "Bob"); res.err != nil {
		t.Errorf("join after the unban: %v", res.err.Error)
	}
	// The lists name real JIDs: not for a participant, nor for someone
	// outside the room.
	for _, c := range []*xmppClient{bob, v.newXMPPClient(t, "dave", "lists")} {
		for _, item := range []xmpp.MUCItem{{Affiliation: xmpp.AffMember}, {Affiliation: xmpp.AffOutcast}, {Role: xmpp.RoleParticipant}} {
			if r := c.iq(muc, xmpp.TypeGet, &xmpp.MUCAdmin{Items: []xmpp.MUCItem{item}}); r.Type != xmpp.TypeError || r.Error.Condition != stanza.Forbidden {
				t.Errorf("%s reading the %+v list: %s %v; want forbidden", c.jid, item, r.Type, r.Error)
			}
		}
	}
}

// TestE2ENickChangeAndSessions: an XMPP user joined from two clients is one
// occupant with one puppet; a nick change renames the puppet in the room;
// one client leaving keeps the other in.
func TestE2ENickChangeAndSessions(t *testing.T) {
	v := need(t)
	mary, room, muc := v.newRoom(t, "Mary", "nicks", "Nicks", "")
	phone := v.newXMPPClient(t, "carol", "phone")
	laptop := v.newXMPPClient(t, "carol", "laptop")
	dave := v.newXMPPClient(t, "dave", "n")
	for _, c := range []*xmppClient{phone, dave} {
		c.mustJoin(muc, c.jid.Localpart())
	}
	daveMark := dave.mark()
	res := laptop.join(muc, "carol")
	if res.err != nil {
		t.Fatalf("second session: %v", res.err.Error)
	}
	if res.self.OccupantID == nil {
		t.Fatal("no occupant-id")
	}
	carolID := res.self.OccupantID.ID

	// Messages reach both sessions; the others saw one occupant.
	mark1, mark2 := phone.mark(), laptop.mark()
	mary.say(room, "to both clients")
	phone.waitFrom(mark1, "message on the phone", isGroupchat(occ(muc, "Mary"), "to both clients"))
	laptop.waitFrom(mark2, "message on the laptop", isGroupchat(occ(muc, "Mary"), "to both clients"))
	for _, st := range dave.since(daveMark) {
		if p, ok := st.(*xmpp.Presence); ok && p.From.Equal(occ(muc, "carol")) && p.Type == "" && !p.From.Equal(jid.JID{}) {
			t.Errorf("the second session was announced again to others: %+v", p)
		}
	}

	// Carol renames from the laptop: 303 for everyone, the puppet's room
	// display name changes, the occupant-id stays.
	mark1, daveMark = phone.mark(), dave.mark()
	laptop.send(&xmpp.Presence{To: xmpp.A(occ(muc, "Caroline"))})
	st, _ := dave.waitFrom(daveMark, "303 for carol", isPresence(occ(muc, "carol"), xmpp.TypeUnavailable))
	if p := st.(*xmpp.Presence); !hasStatus(p, xmpp.StatusNewNick) || itemOf(p).Nick != "Caroline" {
		t.Errorf("nick change presence %+v", p.MUCUser)
	}
	st, _ = dave.waitFrom(daveMark, "Caroline's presence", isPresence(occ(muc, "Caroline"), ""))
	if p := st.(*xmpp.Presence); p.OccupantID == nil || p.OccupantID.ID != carolID {
		t.Errorf("occupant-id after the nick change = %+v; want %s", p.OccupantID, carolID)
	}
	phone.waitFrom(mark1, "the phone learns the new nick", isPresence(occ(muc, "Caroline"), ""))
	mary.waitEvent("carol's puppet renamed", func(evt *event.Event) bool {
		return isMembership(room, puppetOf("carol@"+v.XMPPDomain), event.MembershipJoin)(evt) && evt.Content.AsMember().Displayname == "Caroline"
	})
	// A taken nick is refused.
	daveMark = dave.mark()
	dave.send(&xmpp.Presence{ID: "steal", To: xmpp.A(occ(muc, "Caroline"))})
	st, _ = dave.waitFrom(daveMark, "conflict", func(v any) bool {
		p, ok := v.(*xmpp.Presence)
		return ok && p.ID == "steal" && p.Type == xmpp.TypeError
	})
	if c := st.(*xmpp.Presence).Error.Condition; c != stanza.Conflict {
		t.Errorf("taking an occupied nick: %s; want conflict", c)
	}

	// The laptop leaves; the phone stays, and so does the puppet.
	mark1 = phone.mark()
	laptop.send(&xmpp.Presence{Type: xmpp.TypeUnavailable, To: xmpp.A(occ(muc, "Caroline"))})
	laptop.waitFrom(0, "the laptop's leave", isPresence(occ(muc, "Caroline"), xmpp.TypeUnavailable))
	mary.say(room, "still there?")
	phone.waitFrom(mark1, "message after the other session left", isGroupchat(occ(muc, "Mary"), "still there?"))
	for _, st := range phone.since(mark1) {
		if p, ok := st.(*xmpp.Presence); ok && p.From.Equal(occ(muc, "Caroline")) && p.Type == xmpp.TypeUnavailable {
			t.Error("one session leaving made the occupant leave")
		}
	}
	phone.groupchat(muc, "from the phone")
	mary.waitEvent("message from the remaining session", isMessage(room, puppetOf("carol@"+v.XMPPDomain), "from the phone"))
	if n := len(mary.messagesFrom(room, puppetOf("carol@"+v.XMPPDomain))); n != 1 {
		t.Errorf("puppet sent %d messages; want 1", n)
	}
}
