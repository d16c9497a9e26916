//go:build e2e

package e2e

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"github.com/mxpp/mxpp/xmpp"
)

// contactJID is the JID that stands for a Matrix user on the component.
func (v *env) contactJID(u id.UserID) jid.JID {
	return jid.MustParse(u.Localpart() + "#" + v.HSDomain + "@" + v.CompDomain)
}

// isChat matches a one-to-one chat message from a JID with a body.
func isChat(from jid.JID, body string) func(any) bool {
	return func(v any) bool {
		m, ok := v.(*xmpp.Message)
		return ok && m.Type == xmpp.TypeChat && m.From.Bare().Equal(from.Bare()) && m.Body == body
	}
}

// isDirectInvite matches the invitation of a direct chat from a puppet.
func isDirectInvite(to, from id.UserID) func(*event.Event) bool {
	return func(evt *event.Event) bool {
		return evt.Type == event.StateMember && evt.Sender == from && evt.StateKey != nil && *evt.StateKey == to.String() &&
			evt.Content.AsMember().Membership == event.MembershipInvite
	}
}

// TestE2EDirectFromXMPP: an XMPP user's chat message to a Matrix user's
// JID opens a direct chat on Matrix, encrypted (encryption.default is on in
// the test config); messages, corrections, replies and reactions cross
// both ways; leaving the chat on Matrix ends it, and the next message opens
// a new one.
func TestE2EDirectFromXMPP(t *testing.T) {
	v := need(t)
	mary := v.newEncryptedUser(t, "mary", "Mary")
	grace := v.newXMPPClient(t, "grace", "dm")
	maryJID := v.contactJID(mary.id)
	puppet := puppetOf("grace@" + v.XMPPDomain)

	// Before any chat, an XMPP client asks what Mary's JID is and does
	// (XEP-0030); a JID of nobody is not found.
	info := grace.iq(maryJID, xmpp.TypeGet, &xmpp.DiscoInfo{})
	var disco xmpp.DiscoInfo
	if info.Type != xmpp.TypeResult || info.Payload.Decode(&disco) != nil || len(disco.Identities) != 1 ||
		disco.Identities[0].Category != "client" || disco.Identities[0].Name != "Mary" {
		t.Errorf("disco#info of Mary's JID: %s %+v; want a client named Mary", info.Type, disco)
	}
	for _, f := range []string{xmpp.NSReceipts, xmpp.NSChatStates, xmpp.NSCorrect, xmpp.NSReactions, xmpp.NSReply, xmpp.NSRetract, xmpp.NSVCard} {
		if !slices.ContainsFunc(disco.Features, func(d xmpp.DiscoFeature) bool { return d.Var == f }) {
			t.Errorf("disco#info of Mary's JID lacks %s", f)
		}
	}
	if nobody := grace.iq(v.contactJID(id.UserID("@nobody:"+v.HSDomain)), xmpp.TypeGet, &xmpp.DiscoInfo{}); nobody.Error == nil ||
		nobody.Error.Condition != stanza.ItemNotFound {
		t.Errorf("disco#info of a JID of nobody: %s %+v; want item-not-found", nobody.Type, nobody.Error)
	}

	// The first message asks for a delivery receipt (XEP-0184), which
	// comes once it is on Matrix.
	receiptMark := grace.mark()
	grace.send(&xmpp.Message{ID: "g1", Type: xmpp.TypeChat, To: xmpp.A(maryJID), Body: "hello Mary",
		OriginID: &xmpp.OriginID{ID: "g1"}, ReceiptRequest: true})
	// More at once, while the chat is being opened: they wait for it, in
	// order, and none counts as opening another chat.
	var burst []string
	for i := range 12 {
		burst = append(burst, fmt.Sprintf("burst %d", i))
		grace.send(&xmpp.Message{ID: fmt.Sprintf("b%d", i), Type: xmpp.TypeChat, To: xmpp.A(maryJID), Body: burst[i]})
	}
	invite := mary.waitEvent("the invitation to a direct chat", isDirectInvite(mary.id, puppet))
	room := invite.RoomID
	if !invite.Content.AsMember().IsDirect {
		t.Error("the invitation is not marked is_direct")
	}
	mary.join(room)
	first := mary.waitEvent("grace's first message, decrypted", wasEncrypted(room, puppet, "hello Mary"))
	isReceipt := func(v any) bool {
		m, ok := v.(*xmpp.Message)
		return ok && m.Received != nil && m.From.Bare().Equal(maryJID)
	}
	if st, _ := grace.waitFrom(receiptMark, "the receipt of the first message", isReceipt); st.(*xmpp.Message).Received.ID != "g1" {
		t.Errorf("the first receipt is for %q; want g1", st.(*xmpp.Message).Received.ID)
	}
	mary.waitEvent("the end of the burst", wasEncrypted(room, puppet, burst[len(burst)-1]))
	if got := mary.messagesFrom(room, puppet); !slices.Equal(got, append([]string{"hello Mary"}, burst...)) {
		t.Errorf("messages in the new chat: %q; want the first and the burst, in order", got)
	}
	var enc event.EncryptionEventContent
	if err := mary.c.StateEvent(ctx(t), room, event.StateEncryption, "", &enc); err != nil || enc.Algorithm != id.AlgorithmMegolmV1 {
		t.Errorf("the direct chat is not encrypted: %v, %v", enc, err)
	}
	var state map[string]any
	if err := mary.c.StateEvent(ctx(t), room, event.StateBridge, "xmpp://"+v.CompDomain+"/grace@"+v.XMPPDomain, &state); err != nil {
		t.Errorf("m.bridge of the direct chat: %v", err)
	} else if state["net.mxpp.decrypts"] != true {
		t.Errorf("m.bridge of an encrypted direct chat: %v; want it to say the bridge decrypts", state)
	}
	mary.waitEvent("the notice that the bridge decrypts", func(evt *event.Event) bool {
		return evt.RoomID == room && evt.Sender == botID() && strings.Contains(evt.Content.AsMessage().Body, "decrypts")
	})

	// Matrix -> XMPP, and the ids each side uses for the other's messages.
	mark := grace.mark()
	hi := mary.say(room, "hi Grace")
	st, _ := grace.waitFrom(mark, "mary's answer", isChat(maryJID, "hi Grace"))
	if m := st.(*xmpp.Message); m.ID != hi.String() || m.OriginID == nil || m.OriginID.ID != hi.String() {
		t.Errorf("mary's message has id %q, origin-id %+v; want the event ID %s", m.ID, m.OriginID, hi)
	}
	// Mary's answer came after the burst was bridged: the burst, which
	// asked for none, got no receipts.
	for _, st := range grace.since(receiptMark) {
		if isReceipt(st) && st.(*xmpp.Message).Received.ID != "g1" {
			t.Errorf("a receipt for %q, which asked for none", st.(*xmpp.Message).Received.ID)
		}
	}

	// A correction from XMPP edits the Matrix message.
	grace.send(&xmpp.Message{ID: "g2", Type: xmpp.TypeChat, To: xmpp.A(maryJID), Body: "hello, Mary", Replace: &xmpp.Replace{ID: "g1"}})
	edit := mary.waitEvent("the correction", func(evt *event.Event) bool {
		return evt.RoomID == room && evt.Sender == puppet && evt.Type == event.EventMessage &&
			evt.Content.AsMessage().RelatesTo.GetReplaceID() == first.ID
	})
	if nc := edit.Content.AsMessage().NewContent; nc == nil || nc.Body != "hello, Mary" {
		t.Errorf("the edit carries %+v", nc)
	}
	// A reaction from XMPP to mary's message.
	grace.send(&xmpp.Message{Type: xmpp.TypeChat, To: xmpp.A(maryJID), Reactions: &xmpp.Reactions{ID: hi.String(), Reactions: []string{"👍"}}})
	mary.waitEvent("grace's reaction", func(evt *event.Event) bool {
		r, ok := evt.Content.Parsed.(*event.ReactionEventContent)
		return evt.RoomID == room && evt.Sender == puppet && ok && r.RelatesTo.EventID == hi && r.RelatesTo.Key == "👍"
	})

	// An edit and a reply from Matrix refer to grace's message by her id.
	mark = grace.mark()
	if _, err := mary.c.SendMessageEvent(ctx(t), room, event.EventMessage, &event.MessageEventContent{
		MsgType: event.MsgText, Body: "quoting you", RelatesTo: (&event.RelatesTo{}).SetReplyTo(first.ID),
	}); err != nil {
		t.Fatal(err)
	}
	st, _ = grace.waitFrom(mark, "mary's reply", func(v any) bool {
		m, ok := v.(*xmpp.Message)
		return ok && m.Type == xmpp.TypeChat && m.Reply != nil
	})
	if r := st.(*xmpp.Message).Reply; r.ID != "g1" || !r.To.Bare().Equal(grace.jid.Bare()) {
		t.Errorf("reply refers to %q of %s; want g1 of grace", r.ID, r.To)
	}
	mark = grace.mark()
	mary.c.SendMessageEvent(ctx(t), room, event.EventMessage, &event.MessageEventContent{
		MsgType: event.MsgText, Body: "* hi, Grace", NewContent: &event.MessageEventContent{MsgType: event.MsgText, Body: "hi, Grace"},
		RelatesTo: &event.RelatesTo{Type: event.RelReplace, EventID: hi},
	})
	st, _ = grace.waitFrom(mark, "mary's correction", isChat(maryJID, "hi, Grace"))
	if r := st.(*xmpp.Message).Replace; r == nil || r.ID != hi.String() {
		t.Errorf("mary's correction replaces %+v; want %s", r, hi)
	}

	// Leaving ends the chat; the next message opens a new one.
	mary.leave(room)
	waitFor(t, "the bridge closing the chat", func() bool {
		for _, row := range dbRows(t) {
			if strings.HasPrefix(row, "portal: ") && strings.Contains(row, room.String()) {
				return false
			}
		}
		return true
	})
	grace.send(&xmpp.Message{ID: "g3", Type: xmpp.TypeChat, To: xmpp.A(maryJID), Body: "still there?"})
	again := mary.waitEvent("a new invitation", func(evt *event.Event) bool {
		return isDirectInvite(mary.id, puppet)(evt) && evt.RoomID != room
	})
	mary.join(again.RoomID)
	mary.waitEvent("the message in the new chat", wasEncrypted(again.RoomID, puppet, "still there?"))
}

// TestE2EDirectFromMatrix: a Matrix user who opens a direct chat with a
// puppet reaches that XMPP user, in an unencrypted room too; contact
// requests wait for the Matrix user's answer in the bot's chat (allow,
// deny, block, contacts); a message to a user who does not exist, or from
// a user the operator does not let in, is refused.
func TestE2EDirectFromMatrix(t *testing.T) {
	v := need(t)
	bob := v.newMatrixUser(t, "bob", "Bob")
	heidi := v.newXMPPClient(t, "heidi", "dm")
	bobJID := v.contactJID(bob.id)
	// The puppet does not exist before the invitation: the homeserver asks
	// the bridge for it.
	puppet := puppetOf("heidi@" + v.XMPPDomain)
	resp, err := bob.c.CreateRoom(ctx(t), &mautrix.ReqCreateRoom{Preset: "trusted_private_chat", IsDirect: true, Invite: []id.UserID{puppet}})
	if err != nil {
		t.Fatalf("inviting a puppet the bridge has not seen: %v", err)
	}
	room := resp.RoomID
	// Written at once, before the puppet can have accepted.
	early := bob.say(room, "are you there?")
	if st, _ := heidi.waitFrom(0, "bob's message from before the chat was accepted", isChat(bobJID, "are you there?")); st.(*xmpp.Message).ID != early.String() {
		t.Errorf("the early message has id %q; want %s", st.(*xmpp.Message).ID, early)
	}
	bob.waitEvent("the puppet accepting", isMembership(room, puppet, event.MembershipJoin))
	bob.waitEvent("the bot joining", isMembership(room, botID(), event.MembershipJoin))
	bob.waitEvent("the chat's m.bridge state", func(evt *event.Event) bool {
		return evt.RoomID == room && evt.Type == event.StateBridge && evt.StateKey != nil &&
			*evt.StateKey == "xmpp://"+v.CompDomain+"/heidi@"+v.XMPPDomain
	})
	if got := metric(t, "mxpp_direct_chats"); got < 1 {
		t.Errorf("mxpp_direct_chats = %v with a chat open", got)
	}

	mark := heidi.mark()
	sent, err := bob.c.SendMessageEvent(ctx(t), room, event.EventMessage, &event.MessageEventContent{MsgType: event.MsgText,
		Body: "hello Heidi, welcome", Format: event.FormatHTML, FormattedBody: "hello Heidi, <strong>welcome</strong>"})
	if err != nil {
		t.Fatal(err)
	}
	hello := sent.EventID
	st, _ := heidi.waitFrom(mark, "bob's message", isChat(bobJID, "hello Heidi, *welcome*"))
	if m := st.(*xmpp.Message); m.ID != hello.String() || m.Nick != "Bob" {
		t.Errorf("bob's message has id %q, nick %q; want %s, Bob", m.ID, m.Nick, hello)
	}
	heidi.send(&xmpp.Message{ID: "h1", Type: xmpp.TypeChat, To: xmpp.A(bobJID), Body: "hi Bob"})
	answer := bob.waitEvent("heidi's answer", isMessage(room, puppet, "hi Bob"))
	if answer.Mautrix.WasEncrypted {
		t.Error("an answer in an unencrypted chat arrived encrypted")
	}
	// Heidi takes her message back; bob deletes his.
	heidi.send(&xmpp.Message{Type: xmpp.TypeChat, To: xmpp.A(bobJID), Retract: &xmpp.Retract{ID: "h1"}})
	bob.waitEvent("heidi's retraction", func(evt *event.Event) bool {
		return evt.RoomID == room && evt.Type == event.EventRedaction && evt.Sender == puppet && evt.Redacts == answer.ID
	})
	mark = heidi.mark()
	if _, err = bob.c.RedactEvent(ctx(t), room, hello); err != nil {
		t.Fatal(err)
	}
	heidi.waitFrom(mark, "bob's retraction", func(v any) bool {
		m, ok := v.(*xmpp.Message)
		return ok && m.From.Bare().Equal(bobJID) && m.Retract != nil && m.Retract.ID == hello.String()
	})

	// Heidi asks to see Bob's presence (a roster subscription; the server
	// tells only sessions that asked for the roster about subscriptions).
	// The request waits while the bot asks Bob, in a chat of its own with
	// him; Bob allows it, and Heidi sees him available.
	heidi.sendRaw(`<iq type="get" id="roster1"><query xmlns="jabber:iq:roster"/></iq>`)
	mark = heidi.mark()
	heidiBare := "heidi@" + v.XMPPDomain
	heidi.send(&xmpp.Presence{Type: "subscribe", To: xmpp.A(bobJID)})
	botInvite := bob.waitEvent("the bot's chat", isDirectInvite(bob.id, botID()))
	botChat := botInvite.RoomID
	bob.join(botChat)
	bob.waitEvent("the question", func(evt *event.Event) bool {
		return evt.RoomID == botChat && evt.Sender == botID() &&
			strings.Contains(evt.Content.AsMessage().Body, heidiBare+" wants to see your presence")
	})
	isSubscribed := func(v any) bool {
		p, ok := v.(*xmpp.Presence)
		return ok && p.Type == "subscribed" && p.From.Bare().Equal(bobJID)
	}
	for _, st := range heidi.since(mark) {
		if isSubscribed(st) {
			t.Fatal("the subscription was approved before Bob answered")
		}
	}
	bob.ask(botChat, "allow "+heidiBare, "sees your presence now")
	heidi.waitFrom(mark, "the subscription approval", isSubscribed)
	st, _ = heidi.waitFrom(mark, "bob's presence", func(v any) bool {
		p, ok := v.(*xmpp.Presence)
		return ok && p.Type == "" && p.From.Bare().Equal(bobJID)
	})
	if nick := st.(*xmpp.Presence).Nick; nick != "Bob" {
		t.Errorf("bob's presence has nick %q; want his display name (XEP-0172)", nick)
	}

	// Ivan is denied, then blocked: no presence, and his messages are
	// refused. Bob's contacts say so; Heidi's own unsubscribe takes her out.
	ivan := v.newXMPPClient(t, "ivan", "dm")
	ivanBare := "ivan@" + v.XMPPDomain
	ivan.sendRaw(`<iq type="get" id="roster2"><query xmlns="jabber:iq:roster"/></iq>`)
	ivanMark := ivan.mark()
	ivan.send(&xmpp.Presence{Type: "subscribe", To: xmpp.A(bobJID)})
	bob.waitEvent("the question about ivan", func(evt *event.Event) bool {
		return evt.RoomID == botChat && strings.Contains(evt.Content.AsMessage().Body, ivanBare+" wants to see your presence")
	})
	bob.ask(botChat, "deny "+ivanBare, "does not see your presence")
	ivan.waitFrom(ivanMark, "the refusal", func(v any) bool {
		p, ok := v.(*xmpp.Presence)
		return ok && p.Type == "unsubscribed" && p.From.Bare().Equal(bobJID)
	})
	bob.ask(botChat, "block "+ivanBare, "is blocked")
	ivanMark = ivan.mark()
	ivan.send(&xmpp.Message{ID: "iv1", Type: xmpp.TypeChat, To: xmpp.A(bobJID), Body: "let me in"})
	if got := ivan.messageError(ivanMark, "iv1"); got != stanza.Forbidden {
		t.Errorf("a blocked user's message: %s; want forbidden", got)
	}
	contacts := bob.ask(botChat, "contacts", heidiBare+": allowed")
	if !strings.Contains(contacts, ivanBare+": blocked") {
		t.Errorf("contacts: %q; want ivan blocked", contacts)
	}
	heidi.send(&xmpp.Presence{Type: "unsubscribe", To: xmpp.A(bobJID)})
	deadline := time.Now().Add(10 * time.Second)
	for strings.Contains(contacts, heidiBare) && time.Now().Before(deadline) {
		contacts = bob.ask(botChat, "contacts", ivanBare)
	}
	if strings.Contains(contacts, heidiBare) {
		t.Errorf("after heidi's unsubscribe the contacts still list her: %q", contacts)
	}
	bob.ask(botChat, "unblock "+ivanBare, "is not blocked")

	// Refusals: an unknown user; a user of another homeserver.
	for to, want := range map[string]string{
		"nobody-here#" + v.HSDomain + "@" + v.CompDomain: "item-not-found",
		"bob#elsewhere.example@" + v.CompDomain:          "item-not-found",
	} {
		mark := heidi.mark()
		msgID := xmpp.RandomID()
		heidi.send(&xmpp.Message{ID: msgID, Type: xmpp.TypeChat, To: xmpp.A(jid.MustParse(to)), Body: "anyone?"})
		if got := heidi.messageError(mark, msgID); string(got) != want {
			t.Errorf("message to %s: %s; want %s", to, got, want)
		}
	}
	// An XMPP user of a denied domain cannot be invited: the bridge does
	// not create the puppet when the homeserver asks, and declines.
	eve := puppetOf("eve@denied.test")
	_, _ = bob.c.CreateRoom(ctx(t), &mautrix.ReqCreateRoom{Preset: "trusted_private_chat", IsDirect: true, Invite: []id.UserID{eve}})
	if _, err := bob.c.GetProfile(ctx(t), eve); !errors.Is(err, mautrix.MNotFound) {
		t.Errorf("profile of a denied user's puppet after an invitation: %v; want M_NOT_FOUND (no puppet)", err)
	}

	// forget ends the chat and leaves no row naming heidi.
	admin := v.matrixUser(t, "opsadmin", "Ops")
	admin.ask(admin.directChat(), "forget heidi@"+v.XMPPDomain, "removed from 1 room(s)")
	bob.waitEvent("the puppet leaving on forget", isMembership(room, puppet, event.MembershipLeave))
	for _, row := range dbRows(t) {
		if strings.Contains(row, "heidi@"+v.XMPPDomain) || strings.Contains(row, puppet.String()) {
			t.Errorf("a row names heidi after forget: %s", row)
		}
	}
}

// TestE2EDirectRateLimit: an XMPP user cannot open direct chats by the
// thousand: after a burst, new ones are refused with policy-violation.
func TestE2EDirectRateLimit(t *testing.T) {
	v := need(t)
	ivan := v.newXMPPClient(t, "ivan", "dm")
	var got []string
	for i := range 12 {
		mark := ivan.mark()
		msgID := xmpp.RandomID()
		to := jid.MustParse(fmt.Sprintf("nobody%d#%s@%s", i, v.HSDomain, v.CompDomain))
		ivan.send(&xmpp.Message{ID: msgID, Type: xmpp.TypeChat, To: xmpp.A(to), Body: "hello?"})
		got = append(got, string(ivan.messageError(mark, msgID)))
	}
	for i, c := range got {
		want := "item-not-found"
		if i >= 10 {
			want = "policy-violation"
		}
		if c != want {
			t.Errorf("attempt %d: %s; want %s (all: %v)", i+1, c, want, got)
		}
	}
}

// TestE2ELookupLimit: an XMPP user who floods the bridge with questions
// about Matrix users (vCards, presence probes) gets resource-constraint
// beyond a burst, instead of a homeserver request each.
func TestE2ELookupLimit(t *testing.T) {
	v := need(t)
	ivan := v.newXMPPClient(t, "ivan", "lookup")
	to := xmpp.A(jid.MustParse("nobody#" + v.HSDomain + "@" + v.CompDomain))
	mark := ivan.mark()
	const n = 80
	for i := range n {
		ivan.send(&xmpp.IQ{ID: fmt.Sprintf("vc%d", i), Type: xmpp.TypeGet, To: to, Body: &xmpp.VCard{}})
	}
	conds := map[string]int{}
	for i := range n {
		st, _ := ivan.waitFrom(mark, "the answer to vCard request "+strconv.Itoa(i), func(v any) bool {
			iq, ok := v.(*xmpp.IQ)
			return ok && iq.ID == fmt.Sprintf("vc%d", i)
		})
		if iq := st.(*xmpp.IQ); iq.Error != nil {
			conds[string(iq.Error.Condition)]++
		} else {
			conds["result"]++
		}
	}
	if conds["resource-constraint"] == 0 || conds["item-not-found"] < 40 {
		t.Errorf("answers to %d vCard requests at once: %v; want most looked up (item-not-found: no such user), the rest refused", n, conds)
	}
}

// waitFor polls cond until it holds, failing the test after 20 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestE2ERoomQueryLimit: vCard requests to a room and its occupants (and
// archive queries) count against the sender's lookups too: each may make
// the bridge fetch an avatar or read the room's timeline.
func TestE2ERoomQueryLimit(t *testing.T) {
	v := need(t)
	_, _, muc := v.newRoom(t, "Mary", "querylimit", "Query limit", "")
	heidi := v.newXMPPClient(t, "heidi", "queries")
	mark := heidi.mark()
	const n = 80
	for i := range n {
		heidi.send(&xmpp.IQ{ID: fmt.Sprintf("rv%d", i), Type: xmpp.TypeGet, To: xmpp.A(muc), Body: &xmpp.VCard{}})
	}
	conds := map[string]int{}
	for i := range n {
		st, _ := heidi.waitFrom(mark, "the answer to vCard request "+strconv.Itoa(i), func(v any) bool {
			iq, ok := v.(*xmpp.IQ)
			return ok && iq.ID == fmt.Sprintf("rv%d", i)
		})
		if iq := st.(*xmpp.IQ); iq.Error != nil {
			conds[string(iq.Error.Condition)]++
		} else {
			conds["result"]++
		}
	}
	if conds["resource-constraint"] == 0 || conds["result"] < 40 {
		t.Errorf("answers to %d vCard requests to a room at once: %v; want most answered, the rest refused", n, conds)
	}
}
