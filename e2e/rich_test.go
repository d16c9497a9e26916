//go:build e2e

package e2e

import (
	"slices"
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

// sendHTML sends a formatted Matrix message.
func (u *mxUser) sendHTML(room id.RoomID, msgtype event.MessageType, body, html string, mentions ...id.UserID) id.EventID {
	u.t.Helper()
	content := &event.MessageEventContent{MsgType: msgtype, Body: body, Format: event.FormatHTML, FormattedBody: html,
		Mentions: &event.Mentions{UserIDs: mentions}}
	resp, err := u.c.SendMessageEvent(ctx(u.t), room, event.EventMessage, content)
	if err != nil {
		u.t.Fatal(err)
	}
	return resp.EventID
}

// TestE2EFormattingAndMentions: Matrix HTML reaches XMPP as XEP-0393
// styling with pills as nicks (and XEP-0372 references); XMPP styling,
// XHTML-IM and mentions reach Matrix as HTML, pills and m.mentions; emotes
// and notices cross both ways.
func TestE2EFormattingAndMentions(t *testing.T) {
	v := need(t)
	mary, room, muc := v.newRoom(t, "Mary Q", "format", "Format", "")
	alice := v.newXMPPClient(t, "alice", "fmt")
	alice.mustJoin(muc, "Alice")
	puppet := puppetOf("alice@" + v.XMPPDomain)
	mary.waitEvent("alice's puppet", isMembership(room, puppet, event.MembershipJoin))

	// Matrix -> XMPP.
	mark := alice.mark()
	mary.sendHTML(room, event.MsgText, "**bold** and `code` for Alice",
		`<strong>bold</strong> and <code>code</code> for <a href="https://matrix.to/#/`+puppet.String()+`">alice</a>`, puppet)
	st, _ := alice.waitFrom(mark, "styled message", isGroupchat(occ(muc, "Mary Q"), "*bold* and `code` for Alice"))
	m := st.(*xmpp.Message)
	begin := strings.Index(m.Body, "Alice")
	if len(m.References) != 1 || m.References[0].URI != xmpp.URI(occ(muc, "Alice"), "") || *m.References[0].Begin != begin || *m.References[0].End != begin+5 {
		t.Errorf("references %+v; want one mention of Alice at %d", m.References, begin)
	}
	mary.sendHTML(room, event.MsgEmote, "waves", "<em>waves</em>")
	alice.waitFrom(mark, "emote", isGroupchat(occ(muc, "Mary Q"), "/me _waves_"))
	if _, err := mary.c.SendNotice(ctx(t), room, "a notice"); err != nil {
		t.Fatal(err)
	}
	alice.waitFrom(mark, "notice", isGroupchat(occ(muc, "Mary Q"), "a notice"))

	// XMPP -> Matrix.
	alice.groupchat(muc, "Mary Q: this is *important* <script>")
	evt := mary.waitEvent("styled XMPP message", isMessage(room, puppet, "Mary Q: this is *important* <script>"))
	c := evt.Content.AsMessage()
	wantHTML := `<a href="https://matrix.to/#/` + mary.id.String() + `">Mary Q</a>: this is <strong>important</strong> &lt;script&gt;`
	if c.FormattedBody != wantHTML || c.Mentions == nil || len(c.Mentions.UserIDs) != 1 || c.Mentions.UserIDs[0] != mary.id {
		t.Errorf("formatted %q mentions %+v; want %q mentioning Mary", c.FormattedBody, c.Mentions, wantHTML)
	}
	// A bare URL is a link in the HTML, as XMPP clients show it.
	alice.groupchat(muc, "*read* https://example.org/x?a=1&b=2.")
	evt = mary.waitEvent("styled message with a link", isMessage(room, puppet, "*read* https://example.org/x?a=1&b=2."))
	if got, want := evt.Content.AsMessage().FormattedBody,
		`<strong>read</strong> <a href="https://example.org/x?a=1&amp;b=2">https://example.org/x?a=1&amp;b=2</a>.`; got != want {
		t.Errorf("formatted %q; want %q", got, want)
	}
	alice.groupchat(muc, "/me dances")
	evt = mary.waitEvent("emote from XMPP", isMessage(room, puppet, "dances"))
	if evt.Content.AsMessage().MsgType != event.MsgEmote {
		t.Errorf("/me became %s", evt.Content.AsMessage().MsgType)
	}
	xhtml := `<html xmlns="http://jabber.org/protocol/xhtml-im"><body xmlns="http://www.w3.org/1999/xhtml"><p>x<em>y</em><a href="javascript:z">l</a></p></body></html>`
	alice.sendRaw(`<message type="groupchat" to="` + muc.String() + `" id="xh1"><body>xy l</body>` + xhtml + `</message>`)
	evt = mary.waitEvent("XHTML-IM message", isMessage(room, puppet, "xy l"))
	if got := evt.Content.AsMessage().FormattedBody; got != "<p>x<em>y</em><a>l</a></p>" {
		t.Errorf("XHTML-IM became %q", got)
	}
	if strings.Contains(evt.Content.AsMessage().FormattedBody, "javascript") {
		t.Error("a javascript: link crossed the bridge")
	}
}

// TestE2ERepliesAndEdits: replies (XEP-0461 with a short fallback quote)
// and corrections (XEP-0308) cross both ways, edits of edits included; an
// edit of a message the other side never saw arrives marked as a
// correction.
func TestE2ERepliesAndEdits(t *testing.T) {
	v := need(t)
	mary, room, muc := v.newRoom(t, "Mary", "relations", "Relations", "")
	alice := v.newXMPPClient(t, "alice", "rel")
	alice.mustJoin(muc, "Alice")
	puppet := puppetOf("alice@" + v.XMPPDomain)

	// Matrix reply to an XMPP message.
	mark := alice.mark()
	alice.groupchat(muc, "first line\nsecond line")
	origEvt := mary.waitEvent("alice's message", isMessage(room, puppet, "first line\nsecond line"))
	reply := &event.MessageEventContent{MsgType: event.MsgText, Body: "I agree"}
	reply.GetRelatesTo().SetReplyTo(origEvt.ID)
	if _, err := mary.c.SendMessageEvent(ctx(t), room, event.EventMessage, reply); err != nil {
		t.Fatal(err)
	}
	st, _ := alice.waitFrom(mark, "reply", func(v any) bool {
		m, ok := v.(*xmpp.Message)
		return ok && m.Reply != nil && m.From.Equal(occ(muc, "Mary"))
	})
	m := st.(*xmpp.Message)
	if m.Body != "> Alice: first line\nI agree" || m.Reply.ID != origEvt.ID.String() || !m.Reply.To.Equal(occ(muc, "Alice")) {
		t.Errorf("reply %q to %+v", m.Body, m.Reply)
	}
	if got := xmpp.StripFallback(m.Body, m.Fallbacks, xmpp.NSReply); got != "I agree" {
		t.Errorf("reply without its fallback = %q", got)
	}

	// XMPP reply to a Matrix message, with a fallback quote to strip.
	maryEvt := mary.say(room, "question?")
	st, _ = alice.waitFrom(mark, "mary's question", isGroupchat(occ(muc, "Mary"), "question?"))
	q := st.(*xmpp.Message)
	start, end := 0, len([]rune("> Mary: question?\n"))
	alice.send(&xmpp.Message{ID: "r1", Type: xmpp.TypeGroupchat, To: xmpp.A(muc), Body: "> Mary: question?\nanswer!",
		Reply:     &xmpp.Reply{To: xmpp.A(occ(muc, "Mary")), ID: q.StanzaID.ID},
		Fallbacks: []xmpp.Fallback{{For: xmpp.NSReply, Bodies: []xmpp.FallbackBody{{Start: &start, End: &end}}}}})
	evt := mary.waitEvent("reply from XMPP", isMessage(room, puppet, "answer!"))
	if got := evt.Content.AsMessage().RelatesTo.GetReplyTo(); got != maryEvt {
		t.Errorf("XMPP reply points to %s; want %s", got, maryEvt)
	}

	// XMPP correction, then a correction of the correction.
	alice.send(&xmpp.Message{ID: "c1", Type: xmpp.TypeGroupchat, To: xmpp.A(muc), Body: "tpyo", OriginID: &xmpp.OriginID{ID: "c1"}})
	typo := mary.waitEvent("typo", isMessage(room, puppet, "tpyo"))
	alice.send(&xmpp.Message{ID: "c2", Type: xmpp.TypeGroupchat, To: xmpp.A(muc), Body: "typo", Replace: &xmpp.Replace{ID: "c1"}})
	alice.send(&xmpp.Message{ID: "c3", Type: xmpp.TypeGroupchat, To: xmpp.A(muc), Body: "typos", Replace: &xmpp.Replace{ID: "c2"}})
	for _, want := range []string{"typo", "typos"} {
		edit := mary.waitEvent("edit "+want, func(evt *event.Event) bool {
			c := evt.Content.AsMessage()
			return evt.RoomID == room && evt.Sender == puppet && c.NewContent != nil && c.NewContent.Body == want
		})
		if edit.Content.AsMessage().RelatesTo.GetReplaceID() != typo.ID {
			t.Errorf("edit %q replaces %s; want the original %s", want, edit.Content.AsMessage().RelatesTo.GetReplaceID(), typo.ID)
		}
	}
	// A correction of something never bridged: a new, marked message.
	alice.send(&xmpp.Message{ID: "c4", Type: xmpp.TypeGroupchat, To: xmpp.A(muc), Body: "lost", Replace: &xmpp.Replace{ID: "nope"}})
	mary.waitEvent("unknown correction", isMessage(room, puppet, "* lost"))

	// Matrix edits, twice: both are corrections of the original's id.
	mark = alice.mark()
	first := mary.say(room, "helo")
	alice.waitFrom(mark, "helo", isGroupchat(occ(muc, "Mary"), "helo"))
	for _, text := range []string{"hello", "hello!"} {
		edit := &event.MessageEventContent{MsgType: event.MsgText, Body: text}
		edit.SetEdit(first)
		if _, err := mary.c.SendMessageEvent(ctx(t), room, event.EventMessage, edit); err != nil {
			t.Fatal(err)
		}
		st, _ := alice.waitFrom(mark, "correction "+text, isGroupchat(occ(muc, "Mary"), text))
		if r := st.(*xmpp.Message).Replace; r == nil || r.ID != first.String() {
			t.Errorf("correction %q replaces %+v; want %s", text, r, first)
		}
	}
}

func hasRetract(from jid.JID, id string, moderated bool) func(any) bool {
	return func(v any) bool {
		m, ok := v.(*xmpp.Message)
		return ok && m.From.Equal(from) && m.Retract != nil && m.Retract.ID == id && (m.Retract.Moderated != nil) == moderated
	}
}

// xmppReactionsArrive has an XMPP user react to a message (ref, as the
// room names it) with a set of two, then with a smaller set, and waits for
// the reactions on Matrix (to target, from puppet) and the removal of the
// one taken back.
func xmppReactionsArrive(alice *xmppClient, muc jid.JID, mary *mxUser, room id.RoomID, puppet id.UserID, target id.EventID, ref string) {
	alice.t.Helper()
	alice.send(&xmpp.Message{Type: xmpp.TypeGroupchat, To: xmpp.A(muc), Reactions: &xmpp.Reactions{ID: ref, Reactions: []string{"👍", "🎉"}}})
	var thumbs id.EventID
	for _, key := range []string{"👍", "🎉"} {
		evt := mary.waitEvent("reaction "+key, func(evt *event.Event) bool {
			r := evt.Content.AsReaction().RelatesTo
			return evt.RoomID == room && evt.Type == event.EventReaction && evt.Sender == puppet && r.EventID == target && r.Key == key
		})
		if key == "👍" {
			thumbs = evt.ID
		}
	}
	alice.send(&xmpp.Message{Type: xmpp.TypeGroupchat, To: xmpp.A(muc), Reactions: &xmpp.Reactions{ID: ref, Reactions: []string{"🎉"}}})
	mary.waitEvent("removal of 👍", isRedactionOf(room, puppet, thumbs))
}

// isReactionSet matches a reactions message from an occupant to a message
// (ref) with exactly keys, in order.
func isReactionSet(from jid.JID, ref string, keys ...string) func(any) bool {
	return func(v any) bool {
		m, ok := v.(*xmpp.Message)
		return ok && m.From.Equal(from) && m.Reactions != nil && m.Reactions.ID == ref &&
			strings.Join(m.Reactions.Reactions, ",") == strings.Join(keys, ",")
	}
}

func isRedactionOf(room id.RoomID, sender id.UserID, target id.EventID) func(*event.Event) bool {
	return func(evt *event.Event) bool {
		if evt.RoomID != room || evt.Type != event.EventRedaction || evt.Sender != sender {
			return false
		}
		return evt.Redacts == target || evt.Content.AsRedaction().Redacts == target
	}
}

// TestE2EDeletionsAndReactions: deletions cross both ways as XEP-0424
// retractions and XEP-0425 moderations (Dendrite does not push redactions
// to appservices: the bot's sync brings them), and reactions as XEP-0444
// sets, additions and removals.
func TestE2EDeletionsAndReactions(t *testing.T) {
	v := need(t)
	mary, room, muc := v.newRoom(t, "Mary", "deletions", "Deletions", "")
	alice := v.newXMPPClient(t, "alice", "del")
	alice.mustJoin(muc, "Alice")
	puppet := puppetOf("alice@" + v.XMPPDomain)

	// Matrix: Mary deletes her own message -> retraction from her nick.
	mark := alice.mark()
	own := mary.say(room, "oops")
	alice.waitFrom(mark, "oops", isGroupchat(occ(muc, "Mary"), "oops"))
	if _, err := mary.c.RedactEvent(ctx(t), room, own); err != nil {
		t.Fatal(err)
	}
	alice.waitFrom(mark, "retraction of oops", hasRetract(occ(muc, "Mary"), own.String(), false))

	// Matrix: Mary (a moderator) deletes Alice's message -> moderation.
	alice.groupchat(muc, "spam")
	spam := mary.waitEvent("spam", isMessage(room, puppet, "spam"))
	if _, err := mary.c.RedactEvent(ctx(t), room, spam.ID, mautrix.ReqRedact{Reason: "no spam"}); err != nil {
		t.Fatal(err)
	}
	st, _ := alice.waitFrom(mark, "moderation of spam", hasRetract(muc, spam.ID.String(), true))
	if m := st.(*xmpp.Message); !m.Retract.Moderated.By.Equal(occ(muc, "Mary")) || m.Retract.Reason != "no spam" {
		t.Errorf("moderation %+v", m.Retract)
	}

	// XMPP: Alice retracts her own message by the room's stanza-id.
	mark = alice.mark()
	alice.groupchat(muc, "regret")
	st, _ = alice.waitFrom(mark, "reflection of regret", isGroupchat(occ(muc, "Alice"), "regret"))
	regretID := st.(*xmpp.Message).StanzaID.ID
	alice.send(&xmpp.Message{Type: xmpp.TypeGroupchat, To: xmpp.A(muc), Retract: &xmpp.Retract{ID: regretID}})
	mary.waitEvent("redaction of regret", isRedactionOf(room, puppet, id.EventID(regretID)))
	alice.waitFrom(mark, "retraction reflected", hasRetract(occ(muc, "Alice"), regretID, false))

	// XMPP: Alice moderates Mary's message: forbidden until she has power.
	maryMsg := mary.say(room, "moderate me")
	alice.waitFrom(mark, "moderate me", isGroupchat(occ(muc, "Mary"), "moderate me"))
	moderate := &xmpp.Moderate{ID: maryMsg.String(), Retract: &xmpp.Empty{}, Reason: "test"}
	if r := alice.iq(muc, xmpp.TypeSet, moderate); r.Type != xmpp.TypeError || r.Error.Condition != stanza.Forbidden {
		t.Errorf("moderation without power: %s %v", r.Type, r.Error)
	}
	mary.setLevel(room, puppet, 50)
	deadline := time.Now().Add(15 * time.Second)
	for {
		r := alice.iq(muc, xmpp.TypeSet, moderate)
		if r.Type == xmpp.TypeResult {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("moderation with power: %v", r.Error)
		}
		time.Sleep(200 * time.Millisecond)
	}
	mary.waitEvent("moderation on Matrix", isRedactionOf(room, puppet, maryMsg))
	alice.waitFrom(mark, "moderation reflected", hasRetract(muc, maryMsg.String(), true))

	// Reactions, XMPP -> Matrix: a set, then a smaller set.
	target := mary.say(room, "react to me")
	alice.waitFrom(mark, "react to me", isGroupchat(occ(muc, "Mary"), "react to me"))
	xmppReactionsArrive(alice, muc, mary, room, puppet, target, target.String())

	// Reactions, Matrix -> XMPP: each change sends Mary's whole set.
	mark = alice.mark()
	resp, err := mary.c.SendReaction(ctx(t), room, target, "❤️")
	if err != nil {
		t.Fatal(err)
	}
	isSet := func(keys ...string) func(any) bool { return isReactionSet(occ(muc, "Mary"), target.String(), keys...) }
	alice.waitFrom(mark, "Mary's ❤️", isSet("❤️"))
	if _, err = mary.c.SendReaction(ctx(t), room, target, "😀"); err != nil {
		t.Fatal(err)
	}
	alice.waitFrom(mark, "Mary's two reactions", isSet("❤️", "😀"))
	if _, err = mary.c.RedactEvent(ctx(t), room, resp.EventID); err != nil {
		t.Fatal(err)
	}
	alice.waitFrom(mark, "Mary's remaining reaction", isSet("😀"))
}

// TestE2ETypingAndReceipts: chat states and displayed markers cross both
// ways (Dendrite pushes no typing or receipts: the bot's sync brings them).
func TestE2ETypingAndReceipts(t *testing.T) {
	v := need(t)
	mary, room, muc := v.newRoom(t, "Mary", "typing", "Typing", "")
	alice := v.newXMPPClient(t, "alice", "typ")
	alice.mustJoin(muc, "Alice")
	puppet := puppetOf("alice@" + v.XMPPDomain)
	mary.waitEvent("alice's puppet", isMembership(room, puppet, event.MembershipJoin))

	// Matrix typing -> XMPP composing, then active.
	mark := alice.mark()
	if _, err := mary.c.UserTyping(ctx(t), room, true, 20*time.Second); err != nil {
		t.Fatal(err)
	}
	alice.waitFrom(mark, "composing", func(v any) bool {
		m, ok := v.(*xmpp.Message)
		return ok && m.From.Equal(occ(muc, "Mary")) && m.Composing != nil
	})
	if _, err := mary.c.UserTyping(ctx(t), room, false, 0); err != nil {
		t.Fatal(err)
	}
	alice.waitFrom(mark, "active", func(v any) bool {
		m, ok := v.(*xmpp.Message)
		return ok && m.From.Equal(occ(muc, "Mary")) && m.Active != nil
	})

	// XMPP composing -> the puppet types on Matrix.
	alice.send(&xmpp.Message{Type: xmpp.TypeGroupchat, To: xmpp.A(muc), Composing: &xmpp.Empty{}})
	mary.waitEvent("puppet typing", func(evt *event.Event) bool {
		return evt.RoomID == room && evt.Type == event.EphemeralEventTyping && slices.Contains(evt.Content.AsTyping().UserIDs, puppet)
	})

	// XMPP displayed marker -> the puppet's read receipt.
	msg := mary.say(room, "read me")
	alice.waitFrom(mark, "read me", isGroupchat(occ(muc, "Mary"), "read me"))
	alice.send(&xmpp.Message{Type: xmpp.TypeGroupchat, To: xmpp.A(muc), Displayed: &xmpp.Marker{ID: msg.String()}})
	mary.waitEvent("puppet's receipt", func(evt *event.Event) bool {
		if evt.RoomID != room || evt.Type != event.EphemeralEventReceipt {
			return false
		}
		_, ok := (*evt.Content.AsReceipt())[msg][event.ReceiptTypeRead][puppet]
		return ok
	})

	// Matrix read receipt -> displayed marker from Mary's nick.
	alice.groupchat(muc, "did you read this?")
	evt := mary.waitEvent("alice's question", isMessage(room, puppet, "did you read this?"))
	if err := mary.c.MarkRead(ctx(t), room, evt.ID); err != nil {
		t.Fatal(err)
	}
	alice.waitFrom(mark, "displayed marker", func(v any) bool {
		m, ok := v.(*xmpp.Message)
		return ok && m.From.Equal(occ(muc, "Mary")) && m.Displayed != nil && m.Displayed.ID == evt.ID.String()
	})
}
