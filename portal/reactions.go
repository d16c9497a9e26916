package portal

import (
	"context"
	"time"

	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"github.com/mxpp/mxpp/database"
	"github.com/mxpp/mxpp/msgconv"
	"github.com/mxpp/mxpp/xmpp"
)

// handleXMPPReactions applies an occupant's full set of reactions to a
// message (XEP-0444) on Matrix (msgconv.Reactions). The set goes on to
// every session.
func (p *Portal) handleXMPPReactions(ctx context.Context, occ *occupant, msg *xmpp.Message) {
	reject := func(serr *stanza.Error) {
		p.refuse(ctx, msg, serr)
	}
	target, ok := p.replyTarget(ctx, msg.Reactions.ID)
	if !ok {
		reject(xmpp.StanzaError(stanza.ItemNotFound, "No such message to react to"))
		return
	}
	keys, err := p.reactions().Apply(ctx, target, occ.puppet, occ.bare.String(), msgconv.StanzaIDOf(msg), msg.Reactions.Reactions)
	if err != nil {
		p.log.Info().Err(err).Msg("Reactions refused on Matrix")
		reject(matrixError(err, "You may not react in this room"))
		return
	}
	p.bridged(ToMatrix, "reaction")
	p.kind.tellReactions(ctx, occ.nick, occ.puppet, target, keys, nil)
}

// reactions keeps the room's reactions in step.
func (p *Portal) reactions() msgconv.Reactions {
	return msgconv.Reactions{Sender: p.sender(), Matrix: p.deps.Matrix, Hash: p.keyHash}
}

// tellReactions sends one user's reactions to a message to every session
// but skip's.
func (r muc) tellReactions(ctx context.Context, nick string, userID id.UserID, target id.EventID, keys []string, skip *occupant) {
	r.broadcast(ctx, skip, func(to jid.JID) any {
		return &xmpp.Message{ID: xmpp.RandomID(), Type: xmpp.TypeGroupchat, From: xmpp.A(r.occupantJID(nick)), To: xmpp.A(to),
			OccupantID: r.occupantID(userID), Reactions: &xmpp.Reactions{ID: target.String(), Reactions: keys}, Store: &xmpp.Empty{}}
	})
}

// handleMatrixReaction passes a Matrix member's reaction on as their full
// set of reactions to that message, as XEP-0444 wants it.
func (p *Portal) handleMatrixReaction(ctx context.Context, evt *event.Event) {
	rel := evt.Content.AsReaction().RelatesTo
	if rel.Type != event.RelAnnotation || rel.EventID == "" || rel.Key == "" {
		return
	}
	err := p.deps.DB.Reaction.Insert(ctx, &database.Reaction{RoomID: p.RoomID, EventID: evt.ID, TargetEventID: rel.EventID,
		Sender: evt.Sender, KeyHash: p.keyHash(rel.Key), Timestamp: time.Now()})
	if err != nil {
		p.log.Error().Err(err).Msg("Failed to store a reaction")
	}
	p.bridged(ToXMPP, "reaction")
	p.sendReactionSet(ctx, evt.Sender, rel.EventID, map[id.EventID]string{evt.ID: rel.Key})
}

// handleReactionRedaction handles the redaction of a reaction: the
// reactor's remaining set goes to XMPP. It reports whether target was a
// reaction.
func (p *Portal) handleReactionRedaction(ctx context.Context, sender id.UserID, target id.EventID) bool {
	r, err := p.deps.DB.Reaction.GetByEventID(ctx, p.RoomID, target)
	if err != nil || r == nil {
		return false
	}
	if r.Sender != sender && !p.mayRedact(sender) {
		p.log.Info().Stringer("redacts", target).Stringer("sender", sender).
			Msg("Not relaying the redaction of someone else's reaction by a member not allowed to redact")
		return true
	}
	if err = p.deps.DB.Reaction.Delete(ctx, p.RoomID, target); err != nil {
		p.log.Error().Err(err).Msg("Failed to delete a reaction")
	}
	p.sendReactionSet(ctx, r.Sender, r.TargetEventID, nil)
	return true
}

// sendReactionSet sends a Matrix user's current reactions to a message;
// known holds the keys at hand.
func (p *Portal) sendReactionSet(ctx context.Context, sender id.UserID, target id.EventID, known map[id.EventID]string) {
	nick := p.nickOf(sender)
	if nick == "" || len(p.occupants) == 0 {
		return
	}
	keys, err := p.reactions().KeysOf(ctx, sender, target, known)
	if err != nil {
		p.log.Error().Err(err).Msg("Failed to look up reactions")
		return
	}
	p.kind.tellReactions(ctx, nick, sender, target, keys, nil)
}

// keyHash is how the reaction table keeps a reaction key.
func (p *Portal) keyHash(key string) string { return database.KeyHash(p.deps.OccupantIDKey, key) }
