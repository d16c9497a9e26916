//go:build e2e

package e2e

import (
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"github.com/mxpp/mxpp/xmpp"
)

// TestE2EInvitations: in a members-only (invite) room, an XMPP user gets in
// only after an invitation: a Matrix user's invite of the puppet arrives as
// an XEP-0249 invitation; an occupant's mediated invitation invites the
// other user's puppet on Matrix and reaches them from the room.
func TestE2EInvitations(t *testing.T) {
	v := need(t)
	mary := v.newMatrixUser(t, "mary", "Mary")
	resp, err := mary.c.CreateRoom(ctx(t), &mautrix.ReqCreateRoom{Preset: "private_chat", RoomAliasName: "inviteonly", Name: "Invite only"})
	if err != nil {
		t.Fatal(err)
	}
	room, alias := resp.RoomID, id2alias("inviteonly", v.HSDomain)
	muc := mucJID(t, alias)
	mary.expose(room)
	alice := v.newXMPPClient(t, "alice", "inv")
	bob := v.newXMPPClient(t, "bob", "inv")

	if res := alice.join(muc, "Alice"); res.err == nil || res.err.Error.Condition != stanza.RegistrationRequired {
		t.Fatalf("join without invitation: %+v; want registration-required", res.err)
	}

	// Mary invites Alice's puppet: Alice gets a direct invitation.
	mark := alice.mark()
	if _, err := mary.c.InviteUser(ctx(t), room, &mautrix.ReqInviteUser{UserID: puppetOf("alice@" + v.XMPPDomain), Reason: "come in"}); err != nil {
		t.Fatal(err)
	}
	st, _ := alice.waitFrom(mark, "direct invitation", func(v any) bool {
		m, ok := v.(*xmpp.Message)
		return ok && m.DirectInvite != nil
	})
	inv := st.(*xmpp.Message)
	if !inv.DirectInvite.JID.Equal(muc) || inv.DirectInvite.Reason != "come in" || inv.From.Localpart() == "" {
		t.Errorf("direct invitation %+v from %s", inv.DirectInvite, inv.From)
	}
	res := alice.join(muc, "Alice")
	if res.err != nil {
		t.Fatalf("join after the invitation: %v", res.err.Error)
	}
	mary.waitEvent("alice's puppet in", isMembership(room, puppetOf("alice@"+v.XMPPDomain), event.MembershipJoin))
	alice.groupchat(muc, "thanks for the invite")
	mary.waitEvent("message in the invite-only room", isMessage(room, puppetOf("alice@"+v.XMPPDomain), "thanks for the invite"))

	// Bob cannot join, until Alice invites him through the room.
	if res := bob.join(muc, "Bob"); res.err == nil || res.err.Error.Condition != stanza.RegistrationRequired {
		t.Fatalf("bob's join without invitation: %+v; want registration-required", res.err)
	}
	mark = bob.mark()
	alice.send(&xmpp.Message{To: xmpp.A(muc), MUCUser: &xmpp.MUCUser{Invite: []xmpp.MUCInvite{{To: xmpp.A(jid.MustParse("bob@" + v.XMPPDomain)), Reason: "join us"}}}})
	mary.waitEvent("bob's puppet invited", isMembership(room, puppetOf("bob@"+v.XMPPDomain), event.MembershipInvite))
	st, _ = bob.waitFrom(mark, "mediated invitation", func(v any) bool {
		m, ok := v.(*xmpp.Message)
		return ok && m.MUCUser != nil && len(m.MUCUser.Invite) == 1
	})
	if m := st.(*xmpp.Message); !m.From.Equal(muc) || m.MUCUser.Invite[0].Reason != "join us" || !m.MUCUser.Invite[0].From.Equal(jid.MustParse("alice@"+v.XMPPDomain)) {
		t.Errorf("mediated invitation %+v from %s", m.MUCUser.Invite[0], m.From)
	}
	bob.mustJoin(muc, "Bob")
}
