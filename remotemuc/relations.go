package remotemuc

import (
	"context"
	"time"

	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/mxpp/mxpp/database"
	"github.com/mxpp/mxpp/msgconv"
	"github.com/mxpp/mxpp/roomloop"
	"github.com/mxpp/mxpp/xmpp"
)

// What besides messages crosses between a portal room and its MUC:
// reactions (XEP-0444), retractions (XEP-0424) and moderation (XEP-0425),
// chat states (XEP-0085) as typing, displayed markers (XEP-0333) as read
// receipts. In a groupchat they all name a message by the room's
// stanza-id (refOf, messageByRef).

// reactions keeps the room's reactions in step (msgconv.Reactions).
func (p *Portal) reactions() msgconv.Reactions {
	return msgconv.Reactions{Sender: p.sender(), Matrix: p.deps.Matrix,
		Hash: func(k string) string { return database.KeyHash(p.deps.ReactionKey, k) }}
}

// handleOtherPayloads bridges what another occupant's message carries
// besides a body, and reports whether nothing else is left to bridge.
func (p *Portal) handleOtherPayloads(ctx context.Context, x *other, msg *xmpp.Message) (done bool) {
	switch {
	case msg.Retract != nil:
		p.handleRetraction(ctx, x, msg.Retract)
		return true
	case msg.Reactions != nil:
		p.handleReactions(ctx, x, msg)
		return true
	case msg.Displayed != nil:
		if row := p.messageByRef(ctx, msg.Displayed.ID); row != nil && p.showOther(ctx, x) {
			if err := p.deps.Matrix.MarkRead(ctx, p.RoomID, x.puppet, row.EventID); err != nil {
				p.log.Debug().Err(err).Msg("Failed to bridge a displayed marker")
			} else {
				p.bridged(roomloop.ToMatrix, "receipt")
			}
		}
	}
	if state := msgconv.ChatState(msg); state != "" && msg.Body == "" && x.onMatrix {
		if err := p.deps.Matrix.SetTyping(ctx, p.RoomID, x.puppet, state == "composing"); err != nil {
			p.log.Debug().Err(err).Msg("Failed to bridge a chat state")
		} else {
			p.bridged(roomloop.ToMatrix, "typing")
		}
	}
	return msg.Body == ""
}

// handleRetraction deletes on Matrix a message its sender retracted.
func (p *Portal) handleRetraction(ctx context.Context, x *other, r *xmpp.Retract) {
	row := p.messageByRef(ctx, r.ID)
	if row == nil || row.SenderJID != x.key {
		p.log.Debug().Str("id", r.ID).Msg("Ignoring the retraction of a message that is not the sender's, or unknown")
		return
	}
	txn := msgconv.TxnID(p.RoomID.String(), x.key, "retract:"+row.EventID.String(), "")
	if err := p.deps.Matrix.Redact(ctx, p.RoomID, x.puppet, row.EventID, "", txn); err != nil {
		p.log.Info().Err(err).Stringer("event_id", row.EventID).Msg("Retraction refused on Matrix")
		return
	}
	p.bridged(roomloop.ToMatrix, "redaction")
}

// handleModeration deletes on Matrix a message a moderator removed from
// the room (XEP-0425), as the bot, saying who and why.
func (p *Portal) handleModeration(ctx context.Context, r *xmpp.Retract) {
	row := p.messageByRef(ctx, r.ID)
	if row == nil {
		return
	}
	reason := "Removed by a moderator of " + p.room.String()
	if by := r.Moderated.By.Resourcepart(); by != "" {
		reason = "Removed by " + by + " in " + p.room.String()
	}
	if r.Reason != "" {
		reason += ": " + r.Reason
	}
	txn := msgconv.TxnID(p.RoomID.String(), p.room.String(), "moderate:"+row.EventID.String(), "")
	if err := p.deps.Matrix.Redact(ctx, p.RoomID, p.deps.Matrix.BotID(), row.EventID, reason, txn); err != nil {
		p.log.Info().Err(err).Stringer("event_id", row.EventID).Msg("Failed to remove a moderated message on Matrix")
		return
	}
	p.bridged(roomloop.ToMatrix, "redaction")
}

// handleReactions applies an occupant's whole set of reactions to a
// message on Matrix.
func (p *Portal) handleReactions(ctx context.Context, x *other, msg *xmpp.Message) {
	row := p.messageByRef(ctx, msg.Reactions.ID)
	if row == nil || !p.showOther(ctx, x) {
		return
	}
	target := row.EventID
	if row.TargetEventID != "" {
		target = row.TargetEventID
	}
	if _, err := p.reactions().Apply(ctx, target, x.puppet, x.key, msgconv.StanzaIDOf(msg), msg.Reactions.Reactions); err != nil {
		p.log.Info().Err(err).Msg("Reactions refused on Matrix")
		return
	}
	p.bridged(roomloop.ToMatrix, "reaction")
}

// handleMatrixReaction sends a member's whole set of reactions to a
// message to the room (XEP-0444).
func (p *Portal) handleMatrixReaction(ctx context.Context, evt *event.Event) {
	m := p.members[evt.Sender]
	rel := evt.Content.AsReaction().RelatesTo
	if m == nil || rel.Type != event.RelAnnotation || rel.EventID == "" || rel.Key == "" {
		return
	}
	err := p.deps.DB.Reaction.Insert(ctx, &database.Reaction{RoomID: p.RoomID, EventID: evt.ID, TargetEventID: rel.EventID,
		Sender: evt.Sender, KeyHash: p.reactions().Hash(rel.Key), Timestamp: time.Now()})
	if err != nil {
		p.log.Error().Err(err).Msg("Failed to store a reaction")
	}
	p.sendReactionSet(ctx, m, rel.EventID, map[id.EventID]string{evt.ID: rel.Key})
}

// sendReactionSet sends a member's current reactions to a message.
func (p *Portal) sendReactionSet(ctx context.Context, m *member, target id.EventID, known map[id.EventID]string) {
	row, err := p.deps.DB.Message.GetByEventID(ctx, p.RoomID, target)
	if err != nil || row == nil || p.refOf(row) == "" {
		p.log.Debug().Stringer("event_id", target).Msg("Not sending reactions to a message the room cannot name")
		return
	}
	keys, err := p.reactions().KeysOf(ctx, m.user, target, known)
	if err != nil {
		p.log.Error().Err(err).Msg("Failed to look up reactions")
		return
	}
	out := p.occSend(ctx, m, &xmpp.Message{ID: xmpp.RandomID(), Reactions: &xmpp.Reactions{ID: p.refOf(row), Reactions: keys}, Store: &xmpp.Empty{}}, 0)
	if p.send(ctx, out.Send...) && len(out.Send) > 0 {
		p.bridged(roomloop.ToXMPP, "reaction")
	}
}

// handleMatrixRedaction passes a Matrix deletion on: of a reaction, the
// reactor's remaining set; of a member's own message, a retraction
// (XEP-0424); of another's, a moderation request (XEP-0425), which the
// room grants only to its moderators. Deletions the bridge made are its
// own echoes.
func (p *Portal) handleMatrixRedaction(ctx context.Context, evt *event.Event) {
	m := p.members[evt.Sender]
	target := evt.Content.AsRedaction().Redacts
	if target == "" {
		target = evt.Redacts
	}
	if m == nil || target == "" {
		return
	}
	if r, err := p.deps.DB.Reaction.GetByEventID(ctx, p.RoomID, target); err == nil && r != nil {
		if r.Sender != evt.Sender {
			return
		}
		if err = p.deps.DB.Reaction.Delete(ctx, p.RoomID, target); err != nil {
			p.log.Error().Err(err).Msg("Failed to delete a reaction")
		}
		p.sendReactionSet(ctx, m, r.TargetEventID, nil)
		return
	}
	row, err := p.deps.DB.Message.GetByEventID(ctx, p.RoomID, target)
	if err != nil || row == nil || p.refOf(row) == "" {
		return
	}
	reason := evt.Content.AsRedaction().Reason
	if row.SenderJID == m.occ.From.Bare().String() {
		out := p.occSend(ctx, m, &xmpp.Message{ID: xmpp.RandomID(), Body: retractedBody, Retract: &xmpp.Retract{ID: p.refOf(row)},
			Fallbacks: []xmpp.Fallback{{For: xmpp.NSRetract}}, Store: &xmpp.Empty{}}, 0)
		if p.send(ctx, out.Send...) && len(out.Send) > 0 {
			p.bridged(roomloop.ToXMPP, "redaction")
		}
		return
	}
	if m.occ.State() != Joined {
		return
	}
	ref := p.refOf(row)
	from := m.occ.From
	go func() {
		rctx, cancel := context.WithTimeout(p.Context(), 30*time.Second)
		defer cancel()
		_, err := p.deps.XMPP.SendIQ(rctx, &xmpp.IQ{Type: xmpp.TypeSet, From: xmpp.A(from), To: xmpp.A(p.room),
			Body: &xmpp.Moderate{ID: ref, Retract: &xmpp.Empty{}, Reason: reason}})
		p.Queue(p.Context(), moderationDone{user: m.user, event: evt.ID, err: err})
	}()
}

// retractedBody is the fallback body of a retraction (XEP-0428).
const retractedBody = "This message was deleted"

// moderationDone is the room's answer to a moderation request.
type moderationDone struct {
	user  id.UserID
	event id.EventID
	err   error
}

func (p *Portal) handleModerationDone(ctx context.Context, d moderationDone) {
	if d.err == nil {
		p.bridged(roomloop.ToXMPP, "redaction")
		return
	}
	p.log.Info().Err(d.err).Stringer("user_id", d.user).Msg("The MUC refused a moderation")
	text := "The deletion did not reach " + p.room.String() + ": "
	if joined, known := stillJoined(d.err); joined && known || !known {
		text += "the room did not answer, or does not remove messages for its moderators (XEP-0425)."
	} else {
		text += "only its moderators may remove others' messages there."
	}
	p.notice(ctx, text, d.event)
}

// handleMatrixTyping sends members' typing as chat states (XEP-0085).
func (p *Portal) handleMatrixTyping(ctx context.Context, evt *event.Event) {
	now := map[id.UserID]bool{}
	for _, u := range evt.Content.AsTyping().UserIDs {
		now[u] = true
	}
	for u, m := range p.members {
		if now[u] == m.typing || m.occ.State() != Joined || !p.permitted(u) {
			continue
		}
		m.typing = now[u]
		state := "paused"
		if m.typing {
			state = "composing"
		}
		out := p.occSend(ctx, m, msgconv.WithChatState(&xmpp.Message{NoStore: &xmpp.Empty{}}, state), 0)
		p.send(ctx, out.Send...)
	}
}

// handleMatrixReceipts sends members' read receipts as displayed markers
// (XEP-0333) for messages the room can name.
func (p *Portal) handleMatrixReceipts(ctx context.Context, evt *event.Event) {
	for eventID, receipts := range *evt.Content.AsReceipt() {
		for u := range receipts[event.ReceiptTypeRead] {
			m := p.members[u]
			if m == nil || m.lastRead == eventID || m.occ.State() != Joined || !p.permitted(u) {
				continue
			}
			row, err := p.deps.DB.Message.GetByEventID(ctx, p.RoomID, eventID)
			if err != nil || row == nil || p.refOf(row) == "" {
				continue
			}
			m.lastRead = eventID
			out := p.occSend(ctx, m, &xmpp.Message{ID: xmpp.RandomID(), Displayed: &xmpp.Marker{ID: p.refOf(row)}}, 0)
			if p.send(ctx, out.Send...) {
				p.bridged(roomloop.ToXMPP, "receipt")
			}
		}
	}
}
