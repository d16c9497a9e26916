package portal

import (
	"context"
	"html"
	"strconv"
	"strings"

	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/mxpp/mxpp/xmpp"
)

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

// matrixContent turns an XMPP message into Matrix message content: "/me "
// makes an emote (XEP-0245); XEP-0393 styling, or XEP-0071 XHTML-IM when
// sent, becomes HTML; mentions (XEP-0372 references, or a nick at the start
// of the message) become pills and m.mentions.
func (p *Portal) matrixContent(msg *xmpp.Message) *event.MessageEventContent {
	body := msg.Body
	content := &event.MessageEventContent{MsgType: event.MsgText, Body: body}
	if rest, ok := strings.CutPrefix(body, "/me "); ok {
		content.MsgType, body = event.MsgEmote, rest
		content.Body = rest
	}
	mentions := p.mentionsIn(msg, body)
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
func (p *Portal) mentionsIn(msg *xmpp.Message, body string) []mention {
	var out []mention
	offset := len(msg.Body) - len(body) // a cut "/me "
	for _, ref := range msg.References {
		if ref.Type != "mention" || ref.Begin == nil || ref.End == nil {
			continue
		}
		u, ok := p.mentionTarget(ref.URI)
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
			if u, ok := p.userOfNick(nick); ok && nickKey(nick) == nickKey(p.nickOf(u)) {
				return []mention{{u, 0, len(nick)}}
			}
		}
	}
	return nil
}

// mentionTarget maps the URI of a reference to a Matrix user: an occupant
// JID of this room (xmpp:room@component/nick), a contact JID of the
// component, or an XMPP user's JID.
func (p *Portal) mentionTarget(uri string) (id.UserID, bool) {
	j, _, err := xmpp.ParseURI(uri)
	if err != nil {
		return "", false
	}
	if j.Bare().Equal(p.roomJID) {
		return p.userOfNick(j.Resourcepart())
	}
	u, ok := p.userOfJID(j)
	if !ok || (p.roster.members[u] == nil && p.occupantOf(u) == nil) {
		return "", false
	}
	return u, true
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

// xmppBody turns Matrix message content into the body XMPP clients show,
// with XEP-0393 styling for HTML and the nick of every mentioned user, and
// XEP-0372 references to the mentioned occupants.
func (p *Portal) xmppBody(ctx context.Context, content *event.MessageEventContent) (string, []xmpp.Reference) {
	content.RemoveReplyFallback()
	var body string
	var refs []xmpp.Reference
	if content.Format == event.FormatHTML && content.FormattedBody != "" {
		body = HTMLToStyling(ctx, content.FormattedBody, func(mxid, displayname string) string {
			if nick := p.nickOf(id.UserID(mxid)); nick != "" {
				return string(mentionOpen) + nick + string(mentionClose)
			}
			return displayname
		})
		body, refs = p.extractReferences(body)
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
		if link, _, _, _ := p.mediaPayloads(content); link != "" {
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
// XEP-0372 references for the marked nicks.
func (p *Portal) extractReferences(marked string) (string, []xmpp.Reference) {
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
				occ, err := p.roomJID.WithResource(string(nick))
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
