//go:build e2e

package e2e

import (
	"strings"
	"testing"

	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

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
	puppet := puppetOf("alice@" + v.xmppDomain)
	mary.waitEvent("alice's puppet", isMembership(room, puppet, event.MembershipJoin))

	// Matrix -> XMPP.
	mark := alice.mark()
	mary.sendHTML(room, event.MsgText, "**bold** and `code` for Alice",
		`<strong>bold</strong> and <code>code</code> for <a href="https://matrix.to/#/`+puppet.String()+`">alice</a>`, puppet)
	st, _ := alice.waitFrom(mark, "styled message", isGroupchat(occ(muc, "Mary Q"), "*bold* and `code` for Alice"))
	m := st.(*xmpp.Message)
	begin := strings.Index(m.Body, "Alice")
	if len(m.References) != 1 || m.References[0].URI != "xmpp:"+occ(muc, "Alice").String() || *m.References[0].Begin != begin || *m.References[0].End != begin+5 {
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
