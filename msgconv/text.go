package msgconv

import (
	"context"
	"html"
	"strconv"
	"strings"

	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
	"mellium.im/xmpp/jid"

	"github.com/mxpp/mxpp/xmpp"
)

// Names is what translation needs to know of one room: how its members
// are named on the other side. A room's loop implements it; it is called
// from that loop only.
type Names interface {
	// RoomJID is the MUC's bare JID; zero for a direct chat, which has
	// no nicks.
	RoomJID() jid.JID
	// NickOf returns the nick a Matrix user or puppet has in the MUC, or
	// "" if it has none.
	NickOf(u id.UserID) string
	// UserOfNick returns the Matrix user or puppet that holds a nick.
	UserOfNick(nick string) (id.UserID, bool)
	// MemberOfJID returns the member of the room that an address other
	// than an occupant JID of the room stands for: a Matrix user's contact
	// JID, or an XMPP user's real JID.
	MemberOfJID(j jid.JID) (id.UserID, bool)
}

// Private-use runes that mark mentions while a body is converted; they are
// never left in what is sent.
const (
	mentionOpen  = '\uE000'
	mentionClose = '\uE001'
)

// mention is a Matrix user mentioned at a range of an XMPP body.
type mention struct {
	userID     id.UserID
	begin, end int // byte offsets into the body
}

// MatrixContent turns an XMPP message into Matrix message content: "/me "
// makes an emote (XEP-0245); XEP-0393 styling, or XEP-0071 XHTML-IM when
// sent, becomes HTML; mentions (XEP-0372 references, or a nick at the start
// of the message) become pills and m.mentions.
func MatrixContent(names Names, msg *xmpp.Message) *event.MessageEventContent {
	body := msg.Body
	content := &event.MessageEventContent{MsgType: event.MsgText, Body: body}
	if rest, ok := strings.CutPrefix(body, "/me "); ok {
		content.MsgType, body = event.MsgEmote, rest
		content.Body = rest
	}
	mentions := mentionsIn(names, msg, body)
	content.Mentions = &event.Mentions{}
	for _, m := range mentions {
		content.Mentions.Add(m.userID)
	}
	if msg.XHTML != nil && strings.HasPrefix(msg.Body, body) {
		if out, err := XHTMLToHTML(msg.XHTML.Body.Tokens()); err == nil && out != "" && out != html.EscapeString(body) {
			content.Format, content.FormattedBody = event.FormatHTML, out
			return content
		}
	}
	// Mentions are cut out of the body as placeholders before styling is
	// rendered, so a nick can never be styled into something else.
	var marked strings.Builder
	last := 0
	for i, m := range mentions {
		marked.WriteString(body[last:m.begin])
		marked.WriteRune(mentionOpen)
		marked.WriteString(strconv.Itoa(i))
		marked.WriteRune(mentionClose)
		last = m.end
	}
	marked.WriteString(body[last:])
	out, styled := StylingToHTML(marked.String())
	if !styled && len(mentions) == 0 {
		return content
	}
	for i, m := range mentions {
		placeholder := string(mentionOpen) + strconv.Itoa(i) + string(mentionClose)
		pill := `<a href="https://matrix.to/#/` + html.EscapeString(m.userID.String()) + `">` + html.EscapeString(body[m.begin:m.end]) + `</a>`
		out = strings.Replace(out, placeholder, pill, 1)
	}
	content.Format, content.FormattedBody = event.FormatHTML, out
	return content
}

// mentionsIn finds the Matrix users a message mentions: from XEP-0372
// references of type mention, else from "Nick: " or "Nick, " at its start.
// The ranges are sorted and do not overlap.
func mentionsIn(names Names, msg *xmpp.Message, body string) []mention {
	var out []mention
	offset := len(msg.Body) - len(body) // a cut "/me "
	for _, ref := range msg.References {
		if ref.Type != "mention" || ref.Begin == nil || ref.End == nil {
			continue
		}
		u, ok := mentionTarget(names, ref.URI)
		if !ok {
			continue
		}
		begin, end := byteOffset(msg.Body, *ref.Begin)-offset, byteOffset(msg.Body, *ref.End)-offset
		if begin < 0 || end > len(body) || begin >= end || len(out) > 0 && begin < out[len(out)-1].end {
			continue
		}
		out = append(out, mention{u, begin, end})
	}
	if len(out) > 0 || len(msg.References) > 0 {
		return out
	}
	for _, sep := range []string{": ", ", "} {
		if nick, _, ok := strings.Cut(body, sep); ok && nick != "" {
			if u, ok := names.UserOfNick(nick); ok && NickKey(nick) == NickKey(names.NickOf(u)) {
				return []mention{{u, 0, len(nick)}}
			}
		}
	}
	return nil
}

// mentionTarget maps the URI of a reference to a Matrix user: an occupant
// JID of the room (xmpp:room@service/nick), or the address of a member.
func mentionTarget(names Names, uri string) (id.UserID, bool) {
	j, _, err := xmpp.ParseURI(uri)
	if err != nil {
		return "", false
	}
	if room := names.RoomJID(); !room.Equal(jid.JID{}) && j.Bare().Equal(room) {
		return names.UserOfNick(j.Resourcepart())
	}
	return names.MemberOfJID(j)
}

// byteOffset converts a code point offset into a byte offset of s.
func byteOffset(s string, runes int) int {
	if runes < 0 {
		return -1
	}
	for i := range s {
		if runes == 0 {
			return i
		}
		runes--
	}
	if runes == 0 {
		return len(s)
	}
	return len(s) + 1
}

// XMPPBody turns Matrix message content into the body XMPP clients show,
// with XEP-0393 styling for HTML and the nick of every mentioned user, and
// XEP-0372 references to the mentioned occupants. A file becomes its link
// (see MediaPayloads), or a line naming it where it cannot be linked.
func (c *Converter) XMPPBody(ctx context.Context, names Names, content *event.MessageEventContent) (string, []xmpp.Reference) {
	content.RemoveReplyFallback()
	var body string
	var refs []xmpp.Reference
	if content.Format == event.FormatHTML && content.FormattedBody != "" {
		body = HTMLToStyling(ctx, content.FormattedBody, func(mxid, displayname string) string {
			if nick := names.NickOf(id.UserID(mxid)); nick != "" {
				return string(mentionOpen) + nick + string(mentionClose)
			}
			return displayname
		})
		body, refs = extractReferences(names.RoomJID(), body)
	} else {
		body = content.Body
	}
	switch content.MsgType {
	case event.MsgEmote:
		body = "/me " + body
		for i := range refs {
			*refs[i].Begin += 4
			*refs[i].End += 4
		}
	case event.MsgImage, event.MsgFile, event.MsgVideo, event.MsgAudio:
		if link, _, _, _ := c.MediaPayloads(ctx, content); link != "" {
			return link, nil
		}
		name := content.FileName
		if name == "" {
			name = content.Body
		}
		return "[" + strings.TrimPrefix(string(content.MsgType), "m.") + ": " + name + "]", nil
	}
	return body, refs
}

// extractReferences removes the mention markers from a body and returns
// XEP-0372 references to the marked nicks in room.
func extractReferences(room jid.JID, marked string) (string, []xmpp.Reference) {
	var b strings.Builder
	var refs []xmpp.Reference
	runes, begin := 0, -1
	for _, r := range marked {
		switch r {
		case mentionOpen:
			begin = runes
			continue
		case mentionClose:
			if begin >= 0 {
				nick := []rune(b.String())[begin:runes]
				occ, err := room.WithResource(string(nick))
				if err == nil {
					bg, end := begin, runes
					refs = append(refs, xmpp.Reference{Type: "mention", URI: xmpp.URI(occ, ""), Begin: &bg, End: &end})
				}
			}
			begin = -1
			continue
		}
		b.WriteRune(r)
		runes++
	}
	return b.String(), refs
}
