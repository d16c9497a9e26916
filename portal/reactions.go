package portal

import (
	"context"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"github.com/mxpp/mxpp/database"
	"github.com/mxpp/mxpp/msgconv"
	"github.com/mxpp/mxpp/xmpp"
)

// Bounds of one sender's reactions to one message.
const (
	maxReactions     = 20
	maxReactionBytes = 64
)

// handleXMPPReactions applies an occupant's full set of reactions to a
// message (XEP-0444): reactions new in the set are sent to Matrix as the
// puppet, the ones gone from it are redacted. The set goes on to every
// session.
func (p *Portal) handleXMPPReactions(ctx context.Context, occ *occupant, msg *xmpp.Message) {
	reject := func(serr *stanza.Error) {
		p.send(ctx, &xmpp.Message{ID: msg.ID, Type: xmpp.TypeError, From: msg.To, To: msg.From, Error: serr})
	}
	target, ok := p.replyTarget(ctx, msg.Reactions.ID)
	if !ok {
		reject(xmpp.StanzaError(stanza.ItemNotFound, "No such message to react to"))
		return
	}
	want := map[string]string{} // hash -> key
	var keys []string
	for _, k := range msg.Reactions.Reactions {
		k = strings.TrimSpace(k)
		if k == "" || len(k) > maxReactionBytes || !utf8.ValidString(k) {
			continue
		}
		h := p.keyHash(k)
		if _, dup := want[h]; !dup && len(want) < maxReactions {
			want[h] = k
			keys = append(keys, k)
		}
	}
	have, err := p.deps.DB.Reaction.GetBySender(ctx, p.RoomID, target, occ.puppet)
	if err != nil {
		p.log.Error().Err(err).Msg("Failed to look up reactions")
		reject(xmpp.StanzaError(stanza.InternalServerError, ""))
		return
	}
	had := map[string]*database.Reaction{}
	for _, r := range have {
		had[r.KeyHash] = r
	}
	for _, k := range keys {
		h := p.keyHash(k)
		if had[h] != nil {
			continue
		}
		content := &event.ReactionEventContent{RelatesTo: event.RelatesTo{Type: event.RelAnnotation, EventID: target, Key: k}}
		// The stanza's id is part of the key: reacting again after taking a
		// reaction back is a new event, not a retry of the first one.
		key := ""
		if sid := msgconv.StanzaIDOf(msg); sid != "" {
			key = "react:" + sid + ":" + target.String() + ":" + h
		}
		txn := msgconv.TxnID(p.RoomID.String(), occ.bare.String(), key, "")
		evtID, err := p.sendOnce(ctx, occ.puppet, txn, event.EventReaction, content)
		if err != nil {
			p.log.Info().Err(err).Msg("Reaction refused on Matrix")
			reject(matrixError(err, "You may not react in this room"))
			return
		}
		err = p.deps.DB.Reaction.Insert(ctx, &database.Reaction{RoomID: p.RoomID, EventID: evtID, TargetEventID: target,
			Sender: occ.puppet, KeyHash: h, Timestamp: time.Now()})
		if err != nil {
			p.log.Error().Err(err).Msg("Failed to store a reaction")
		} else {
			p.sent(ctx, txn)
		}
	}
	for h, r := range had {
		if _, keep := want[h]; keep {
			continue
		}
		if err := p.deps.Matrix.Redact(ctx, p.RoomID, occ.puppet, r.EventID, "", msgconv.TxnID(p.RoomID.String(), occ.bare.String(), "unreact:"+r.EventID.String(), "")); err != nil {
			p.log.Info().Err(err).Msg("Failed to take back a reaction on Matrix")
			continue
		}
		if err := p.deps.DB.Reaction.Delete(ctx, p.RoomID, r.EventID); err != nil {
			p.log.Error().Err(err).Msg("Failed to delete a reaction")
		}
	}
	p.bridged(ToMatrix, "reaction")
	p.broadcastReactions(ctx, occ.nick, occ.puppet, target, keys, nil)
}

// broadcastReactions sends one user's reactions to a message to every
// session but skip's.
func (p *Portal) broadcastReactions(ctx context.Context, nick string, userID id.UserID, target id.EventID, keys []string, skip *occupant) {
	if d := p.direct; d != nil {
		if userID == d.user {
			ref, _ := p.directRef(ctx, target)
			p.send(ctx, d.chat(&xmpp.Message{ID: xmpp.RandomID(), Reactions: &xmpp.Reactions{ID: ref, Reactions: keys}, Store: &xmpp.Empty{}}))
		}
		return
	}
	p.broadcast(ctx, skip, func(to jid.JID) any {
		return &xmpp.Message{ID: xmpp.RandomID(), Type: xmpp.TypeGroupchat, From: xmpp.A(p.occupantJID(nick)), To: xmpp.A(to),
			OccupantID: p.occupantID(userID), Reactions: &xmpp.Reactions{ID: target.String(), Reactions: keys}, Store: &xmpp.Empty{}}
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

// sendReactionSet sends a Matrix user's current reactions to a message.
// Keys are not stored: known is what the caller has at hand, the rest is
// read back from the reaction events.
func (p *Portal) sendReactionSet(ctx context.Context, sender id.UserID, target id.EventID, known map[id.EventID]string) {
	nick := p.nickOf(sender)
	if nick == "" || len(p.occupants) == 0 {
		return
	}
	rows, err := p.deps.DB.Reaction.GetBySender(ctx, p.RoomID, target, sender)
	if err != nil {
		p.log.Error().Err(err).Msg("Failed to look up reactions")
		return
	}
	var keys []string
	for _, r := range rows {
		key, ok := known[r.EventID]
		if !ok {
			evt, err := p.deps.Matrix.GetEvent(ctx, p.RoomID, r.EventID)
			if err != nil {
				continue
			}
			if c, isReaction := evt.Content.Parsed.(*event.ReactionEventContent); isReaction {
				key = c.RelatesTo.Key
			}
		}
		if key != "" && !slices.Contains(keys, key) {
			keys = append(keys, key)
		}
	}
	p.broadcastReactions(ctx, nick, sender, target, keys, nil)
}

// keyHash is how the reaction table keeps a reaction key.
func (p *Portal) keyHash(key string) string { return database.KeyHash(p.deps.OccupantIDKey, key) }
