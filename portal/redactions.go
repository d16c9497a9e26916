package portal

import (
	"context"
	"strings"

	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
	"mellium.im/xmpp/stanza"

	"github.com/mxpp/mxpp/database"
	"github.com/mxpp/mxpp/msgconv"
	"github.com/mxpp/mxpp/xmpp"
)

// Fallback bodies for clients without retraction support (XEP-0428).
const (
	retractedBody = "This message was deleted"
	moderatedBody = "This message was removed by a moderator"
)

// handleXMPPRetraction deletes one of an occupant's own messages on Matrix
// (XEP-0424) and tells every session, as a MUC does.
func (p *Portal) handleXMPPRetraction(ctx context.Context, occ *occupant, msg *xmpp.Message) {
	reject := func(serr *stanza.Error) {
		p.refuse(ctx, msg, serr)
	}
	target, ok := p.ownMessage(ctx, occ, msg.Retract.ID)
	if !ok {
		reject(xmpp.StanzaError(stanza.ItemNotFound, "No message of yours with that id"))
		return
	}
	err := p.deps.Matrix.Redact(ctx, p.RoomID, occ.puppet, target, "", msgconv.TxnID(p.RoomID.String(), occ.bare.String(), "retract:"+target.String(), ""))
	if err != nil {
		p.log.Info().Err(err).Stringer("event_id", target).Msg("Retraction refused on Matrix")
		reject(matrixError(err, "The message cannot be deleted"))
		return
	}
	p.log.Debug().Stringer("event_id", target).Msg("Bridged XMPP retraction to Matrix")
	p.bridged(ToMatrix, "redaction")
	p.kind.tellRetraction(ctx, occ.nick, occ.puppet, target, nil, "")
}

// ownMessage finds the event of one of an occupant's own messages, by the
// room's stanza-id or the id the occupant gave it.
func (p *Portal) ownMessage(ctx context.Context, occ *occupant, stanzaID string) (id.EventID, bool) {
	if strings.HasPrefix(stanzaID, "$") {
		row, err := p.deps.DB.Message.GetByEventID(ctx, p.RoomID, id.EventID(stanzaID))
		if err == nil && row != nil && row.SenderJID == occ.bare.String() {
			return row.EventID, true
		}
	}
	row, err := p.deps.DB.Message.GetByStanzaID(ctx, p.RoomID, occ.bare.String(), stanzaID)
	if err != nil || row == nil {
		return "", false
	}
	return row.EventID, true
}

// tellRetraction tells every session that a message is gone: from the
// author's nick for their own retraction (XEP-0424), from the room for a
// moderator's (XEP-0425). The id is the room's stanza-id: the event ID.
func (r muc) tellRetraction(ctx context.Context, nick string, author id.UserID, target id.EventID, moderator *xmpp.Moderated, reason string) {
	p := r.Portal
	from, body := p.occupantJID(nick), retractedBody
	if moderator != nil {
		from, body = p.roomJID, moderatedBody
	}
	for _, to := range p.sessions() {
		m := &xmpp.Message{
			ID: xmpp.RandomID(), Type: xmpp.TypeGroupchat, From: xmpp.A(from), To: xmpp.A(to), Body: body,
			Retract:   &xmpp.Retract{ID: target.String(), Moderated: moderator, Reason: reason},
			Fallbacks: []xmpp.Fallback{{For: xmpp.NSRetract}},
			Store:     &xmpp.Empty{},
		}
		if moderator == nil && author != "" {
			m.OccupantID = p.occupantID(author)
		}
		p.send(ctx, m)
	}
}

// handleModerate carries out an XEP-0425 moderation request as the
// moderator's puppet: the room's power levels decide whether it may.
func (p *Portal) handleModerate(ctx context.Context, iq *xmpp.IQ) {
	var req xmpp.Moderate
	if err := iq.Payload.Decode(&req); err != nil || req.Retract == nil || req.ID == "" {
		p.deps.XMPP.Reply(ctx, iq, nil, xmpp.StanzaError(stanza.BadRequest, "Only retraction is supported"))
		return
	}
	occ, ok := p.session(iq.From.JID)
	if !ok {
		p.deps.XMPP.Reply(ctx, iq, nil, xmpp.StanzaError(stanza.Forbidden, "You are not in this room"))
		return
	}
	target, ok := p.replyTarget(ctx, req.ID)
	if !ok {
		p.deps.XMPP.Reply(ctx, iq, nil, xmpp.StanzaError(stanza.ItemNotFound, "No such message"))
		return
	}
	err := p.deps.Matrix.Redact(ctx, p.RoomID, occ.puppet, target, req.Reason, msgconv.TxnID(p.RoomID.String(), occ.bare.String(), "moderate:"+target.String(), ""))
	if err != nil {
		p.log.Info().Err(err).Stringer("event_id", target).Msg("Moderation refused on Matrix")
		p.deps.XMPP.Reply(ctx, iq, nil, matrixError(err, "Your power level in the Matrix room does not allow this"))
		return
	}
	p.deps.XMPP.Reply(ctx, iq, nil, nil)
	p.bridged(ToMatrix, "redaction")
	p.kind.tellRetraction(ctx, "", "", target, &xmpp.Moderated{By: xmpp.A(p.occupantJID(occ.nick)), OccupantID: p.occupantID(occ.puppet)}, req.Reason)
}

// handleMatrixRedaction passes a Matrix deletion on: a user deleting their
// own message is a retraction from their nick, anyone else's a moderation
// from the room. Deletions made through the bridge were sent already.
func (p *Portal) handleMatrixRedaction(ctx context.Context, evt *event.Event) {
	if p.deps.Matrix.IsBridgeUser(evt.Sender) {
		return
	}
	target := evt.Content.AsRedaction().Redacts
	if target == "" {
		target = evt.Redacts
	}
	if target == "" || len(p.occupants) == 0 {
		return
	}
	if p.handleReactionRedaction(ctx, evt.Sender, target) {
		return
	}
	author := p.authorOf(ctx, target)
	if author != evt.Sender && !p.mayRedact(evt.Sender) {
		// Homeservers accept such a redaction into the room but never
		// apply it (Matrix spec, room versions: redaction auth rules).
		p.log.Info().Stringer("event_id", evt.ID).Stringer("redacts", target).Stringer("sender", evt.Sender).
			Msg("Not relaying a redaction by neither the author nor a member allowed to redact")
		return
	}
	p.bridged(ToXMPP, "redaction")
	reason := evt.Content.AsRedaction().Reason
	if author == evt.Sender {
		p.kind.tellRetraction(ctx, p.nickOf(author), author, target, nil, "")
		return
	}
	by := xmpp.A(p.roomJID)
	if nick := p.nickOf(evt.Sender); nick != "" {
		by = xmpp.A(p.occupantJID(nick))
	}
	p.kind.tellRetraction(ctx, "", "", target, &xmpp.Moderated{By: by, OccupantID: p.occupantID(evt.Sender)}, reason)
}

// rowAuthor is the sender of a mapped message, "" if its JID is not one.
func (p *Portal) rowAuthor(row *database.Message) id.UserID {
	if j, err := xmpp.ParseJID(row.SenderJID); err == nil {
		if u, ok := p.userOfJID(j); ok {
			return u
		}
	}
	return ""
}

// mayRedact reports whether a user has the room's level for redacting
// others' events.
func (p *Portal) mayRedact(u id.UserID) bool {
	pl := p.info.PowerLevels
	return pl != nil && pl.GetUserLevel(u) >= pl.Redact()
}

// authorOf returns who sent a message: from the message map when the
// bridge saw it, else from the homeserver, which keeps the sender of a
// redacted event.
func (p *Portal) authorOf(ctx context.Context, eventID id.EventID) id.UserID {
	if row, err := p.deps.DB.Message.GetByEventID(ctx, p.RoomID, eventID); err == nil && row != nil {
		if u := p.rowAuthor(row); u != "" {
			return u
		}
	}
	if evt, err := p.deps.Matrix.GetEvent(ctx, p.RoomID, eventID); err == nil {
		return evt.Sender
	}
	return ""
}
