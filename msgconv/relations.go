package msgconv

import (
	"context"
	"strings"
	"unicode/utf8"

	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/mxpp/mxpp/xmpp"
)

// maxQuoteRunes bounds the excerpt a reply fallback quotes.
const maxQuoteRunes = 80

// Relation is what a Matrix message's relation adds to its XMPP stanza:
// a correction (XEP-0308), or a reply (XEP-0461) with its fallback quote
// (XEP-0428). Which stanza ids name the related message depends on the
// kind of room; the caller fills them in.
type Relation struct {
	// Prefix is the fallback quote, or the correction mark "* " of an
	// edit that cannot be a correction, before the body.
	Prefix  string
	Replace *xmpp.Replace
	Reply   *xmpp.Reply
	// Target is the original event of an edit.
	Target id.EventID
}

// EditOf returns, for a Matrix edit, the event it edits and the content to
// render (the new content); for any other message "" and the content as
// is.
func EditOf(content *event.MessageEventContent) (id.EventID, *event.MessageEventContent) {
	orig := content.RelatesTo.GetReplaceID()
	if orig == "" {
		return "", content
	}
	newContent := content.NewContent
	if newContent == nil {
		newContent = content
		newContent.Body = strings.TrimPrefix(newContent.Body, "* ")
	}
	return orig, newContent
}

// ReplyQuote is the fallback quote of a reply to a message, "> Nick:
// first line", from the quoted event as the room names its sender (nick),
// for clients without XEP-0461. quoted may be nil when the event could not
// be fetched.
func (c *Converter) ReplyQuote(ctx context.Context, names Names, nick string, quoted *event.Event) string {
	excerpt := ""
	if quoted != nil {
		if content, ok := quoted.Content.Parsed.(*event.MessageEventContent); ok {
			if content.NewContent != nil {
				content = content.NewContent
			}
			body, _ := c.XMPPBody(ctx, names, content)
			excerpt, _, _ = strings.Cut(body, "\n")
		}
	}
	if utf8.RuneCountInString(excerpt) > maxQuoteRunes {
		excerpt = string([]rune(excerpt)[:maxQuoteRunes]) + "…"
	}
	switch {
	case nick != "" && excerpt != "":
		return "> " + nick + ": " + excerpt + "\n"
	case nick != "":
		return "> " + nick + " wrote:\n"
	default:
		return "> (reply)\n"
	}
}

// Apply adds the relation to an outgoing message.
func (rel *Relation) Apply(m *xmpp.Message) {
	if rel.Prefix == "" && rel.Replace == nil && rel.Reply == nil {
		return
	}
	m.Body = rel.Prefix + m.Body
	shift := utf8.RuneCountInString(rel.Prefix)
	m.References = append([]xmpp.Reference(nil), m.References...)
	for i := range m.References {
		b, e := *m.References[i].Begin+shift, *m.References[i].End+shift
		m.References[i].Begin, m.References[i].End = &b, &e
	}
	m.Replace = rel.Replace
	if rel.Reply != nil {
		m.Reply = rel.Reply
		start, end := 0, shift
		m.Fallbacks = []xmpp.Fallback{{For: xmpp.NSReply, Bodies: []xmpp.FallbackBody{{Start: &start, End: &end}}}}
	}
}

// StripReplyFallback strips a reply's fallback quote from an XMPP message,
// keeping mentions in place, so that Matrix gets the reply itself.
func StripReplyFallback(msg *xmpp.Message) *xmpp.Message {
	if msg.Reply == nil {
		return msg
	}
	stripped := xmpp.StripFallback(msg.Body, msg.Fallbacks, xmpp.NSReply)
	if stripped == msg.Body {
		return msg
	}
	out := *msg
	out.Body = stripped
	out.References = nil
	if cut := utf8.RuneCountInString(msg.Body) - utf8.RuneCountInString(stripped); strings.HasSuffix(msg.Body, stripped) {
		for _, ref := range msg.References {
			if ref.Begin != nil && ref.End != nil && *ref.Begin >= cut {
				b, e := *ref.Begin-cut, *ref.End-cut
				ref.Begin, ref.End = &b, &e
				out.References = append(out.References, ref)
			}
		}
	}
	return &out
}

// MarkUncorrected marks Matrix content made from an XMPP correction of a
// message the bridge does not know: a new message, starting with "* ".
func MarkUncorrected(content *event.MessageEventContent) {
	content.Body = "* " + content.Body
	if content.FormattedBody != "" {
		content.FormattedBody = "* " + content.FormattedBody
	}
}
