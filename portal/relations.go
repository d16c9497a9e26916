package portal

import (
	"context"
	"strings"

	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/mxpp/mxpp/database"
	"github.com/mxpp/mxpp/msgconv"
	"github.com/mxpp/mxpp/xmpp"
)

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

// addXMPPRelations makes Matrix content a reply or an edit as the XMPP
// message is one. It returns the event an edit edits, or "". A correction
// of an unknown message becomes a new message marked with "* ".
func (p *Portal) addXMPPRelations(ctx context.Context, occ *occupant, msg *xmpp.Message, content *event.MessageEventContent) id.EventID {
	if msg.Replace != nil {
		if orig, ok := p.correctionTarget(ctx, occ, msg.Replace.ID); ok {
			content.SetEdit(orig)
			return orig
		}
		msgconv.MarkUncorrected(content)
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
func (p *Portal) xmppRelations(ctx context.Context, sender id.UserID, content *event.MessageEventContent, rel *msgconv.Relation) (*event.MessageEventContent, bool) {
	if orig, newContent := msgconv.EditOf(content); orig != "" {
		row, err := p.deps.DB.Message.GetByEventID(ctx, p.RoomID, orig)
		if err != nil || row == nil || p.rowAuthor(row) != sender {
			// Degrade: a new message, marked as a correction. An edit of
			// someone else's message (which Matrix clients do not apply)
			// is never a correction of theirs on XMPP.
			rel.Prefix = "* "
			return newContent, false
		}
		rel.Replace = &xmpp.Replace{ID: row.StanzaID}
		rel.Target = orig
		return newContent, true
	}
	if target := content.RelatesTo.GetReplyTo(); target != "" {
		rel.Reply = p.replyTo(ctx, target, &rel.Prefix)
	}
	return content, true
}

// replyTo builds XEP-0461 for a reply to target and writes the fallback
// quote ("> Nick: first line") into prefix.
func (p *Portal) replyTo(ctx context.Context, target id.EventID, prefix *string) *xmpp.Reply {
	reply := &xmpp.Reply{ID: target.String(), To: xmpp.A(p.roomJID)}
	nick := ""
	evt, err := p.deps.Matrix.GetEvent(ctx, p.RoomID, target)
	if err == nil {
		nick = p.historyNick(evt.Sender)
		reply.To = xmpp.A(p.occupantJID(nick))
	} else {
		p.log.Debug().Err(err).Stringer("event_id", target).Msg("Failed to fetch the message a reply quotes")
	}
	*prefix = p.conv.ReplyQuote(ctx, names{p}, nick, evt)
	return reply
}
