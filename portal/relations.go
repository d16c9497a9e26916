package portal

import (
	"context"
	"strings"
	"unicode/utf8"

	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/mxpp/mxpp/database"
	"github.com/mxpp/mxpp/xmpp"
)

// maxQuoteRunes bounds the excerpt a reply fallback quotes.
const maxQuoteRunes = 80

// replyTarget finds the Matrix event an XMPP reply (XEP-0461) refers to. In
// a MUC the id is the room's stanza-id, which this bridge sets to the event
// ID; ids of other kinds are looked up in the message map. An edit stands
// for the message it edits.
func (p *Portal) replyTarget(ctx context.Context, stanzaID string) (id.EventID, bool) {
	if strings.HasPrefix(stanzaID, "$") {
		if row, _ := p.deps.DB.Message.GetByEventID(ctx, p.RoomID, id.EventID(stanzaID)); row != nil && row.TargetEventID != "" {
			return row.TargetEventID, true
		}
		return id.EventID(stanzaID), true
	}
	row, err := p.deps.DB.Message.GetByAnyStanzaID(ctx, p.RoomID, stanzaID)
	if err != nil || row == nil {
		return "", false
	}
	return originalOf(row), true
}

// correctionTarget finds the Matrix event an XMPP correction (XEP-0308)
// replaces: one of the sender's own messages, by the id the sender gave it
// or by the room's stanza-id. A correction of a correction replaces the
// original, as Matrix edits always do.
func (p *Portal) correctionTarget(ctx context.Context, occ *occupant, stanzaID string) (id.EventID, bool) {
	row, err := p.deps.DB.Message.GetByStanzaID(ctx, p.RoomID, occ.bare.String(), stanzaID)
	if err == nil && row == nil && strings.HasPrefix(stanzaID, "$") {
		row, err = p.deps.DB.Message.GetByEventID(ctx, p.RoomID, id.EventID(stanzaID))
		if row != nil && row.SenderJID != occ.bare.String() {
			row = nil // only one's own messages can be corrected
		}
	}
	if err != nil || row == nil {
		return "", false
	}
	return originalOf(row), true
}

func originalOf(row *database.Message) id.EventID {
	if row.TargetEventID != "" {
		return row.TargetEventID
	}
	return row.EventID
}

// prepareXMPPRelations strips a reply's fallback quote from an XMPP
// message, keeping mentions in place, so that Matrix gets the reply itself.
func prepareXMPPRelations(msg *xmpp.Message) *xmpp.Message {
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

// addXMPPRelations makes Matrix content a reply or an edit as the XMPP
// message is one. It returns the event an edit edits, or "". A correction
// of an unknown message becomes a new message marked with "* ".
func (p *Portal) addXMPPRelations(ctx context.Context, occ *occupant, msg *xmpp.Message, content *event.MessageEventContent) id.EventID {
	if msg.Replace != nil {
		if orig, ok := p.correctionTarget(ctx, occ, msg.Replace.ID); ok {
			content.SetEdit(orig)
			return orig
		}
		content.Body = "* " + content.Body
		if content.FormattedBody != "" {
			content.FormattedBody = "* " + content.FormattedBody
		}
		return ""
	}
	if msg.Reply != nil {
		if target, ok := p.replyTarget(ctx, msg.Reply.ID); ok {
			content.GetRelatesTo().SetReplyTo(target)
		}
	}
	return ""
}

// xmppRelations fills rel with what a Matrix message's relation means for
// XMPP: an edit becomes a correction of the XMPP id of the original
// (XEP-0308), a reply gets XEP-0461 with a short quote as XEP-0428
// fallback. It returns the content to render, which for an edit is the new
// content; ok is false for an edit of a message XMPP never saw, which goes
// out as a new message marked with "* ", as does an edit by anyone but the
// original's author.
func (p *Portal) xmppRelations(ctx context.Context, sender id.UserID, content *event.MessageEventContent, rel *relation) (*event.MessageEventContent, bool) {
	if orig := content.RelatesTo.GetReplaceID(); orig != "" {
		newContent := content.NewContent
		if newContent == nil {
			newContent = content
			newContent.Body = strings.TrimPrefix(newContent.Body, "* ")
		}
		row, err := p.deps.DB.Message.GetByEventID(ctx, p.RoomID, orig)
		if err != nil || row == nil || p.rowAuthor(row) != sender {
			// Degrade: a new message, marked as a correction. An edit of
			// someone else's message (which Matrix clients do not apply)
			// is never a correction of theirs on XMPP.
			rel.prefix = "* "
			return newContent, false
		}
		rel.replace = &xmpp.Replace{ID: row.StanzaID}
		rel.target = orig
		return newContent, true
	}
	if target := content.RelatesTo.GetReplyTo(); target != "" {
		rel.reply = p.replyTo(ctx, target, &rel.prefix)
	}
	return content, true
}

// relation is what a Matrix message's relation adds to its XMPP stanza.
type relation struct {
	prefix  string // fallback quote or correction mark before the body
	replace *xmpp.Replace
	reply   *xmpp.Reply
	target  id.EventID // the original of an edit
}

// replyTo builds XEP-0461 for a reply to target and writes the fallback
// quote ("> Nick: first line") into prefix.
func (p *Portal) replyTo(ctx context.Context, target id.EventID, prefix *string) *xmpp.Reply {
	reply := &xmpp.Reply{ID: target.String(), To: xmpp.A(p.roomJID)}
	nick, excerpt := "", ""
	if evt, err := p.deps.Matrix.GetEvent(ctx, p.RoomID, target); err == nil {
		nick = p.historyNick(evt.Sender)
		reply.To = xmpp.A(p.occupantJID(nick))
		if c, ok := evt.Content.Parsed.(*event.MessageEventContent); ok {
			if c.NewContent != nil {
				c = c.NewContent
			}
			body, _ := p.xmppBody(ctx, c)
			excerpt, _, _ = strings.Cut(body, "\n")
		}
	} else {
		p.log.Debug().Err(err).Stringer("event_id", target).Msg("Failed to fetch the message a reply quotes")
	}
	if utf8.RuneCountInString(excerpt) > maxQuoteRunes {
		excerpt = string([]rune(excerpt)[:maxQuoteRunes]) + "…"
	}
	switch {
	case nick != "" && excerpt != "":
		*prefix = "> " + nick + ": " + excerpt + "\n"
	case nick != "":
		*prefix = "> " + nick + " wrote:\n"
	default:
		*prefix = "> (reply)\n"
	}
	return reply
}

// apply adds the relation to an outgoing message.
func (rel *relation) apply(m *xmpp.Message) {
	if rel.prefix == "" && rel.replace == nil && rel.reply == nil {
		return
	}
	m.Body = rel.prefix + m.Body
	shift := utf8.RuneCountInString(rel.prefix)
	m.References = append([]xmpp.Reference(nil), m.References...)
	for i := range m.References {
		b, e := *m.References[i].Begin+shift, *m.References[i].End+shift
		m.References[i].Begin, m.References[i].End = &b, &e
	}
	m.Replace = rel.replace
	if rel.reply != nil {
		m.Reply = rel.reply
		start, end := 0, shift
		m.Fallbacks = []xmpp.Fallback{{For: xmpp.NSReply, Bodies: []xmpp.FallbackBody{{Start: &start, End: &end}}}}
	}
}
