package bridge

import (
	"context"
	"time"

	"github.com/rs/zerolog"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/mxpp/mxpp/matrix"
	"github.com/mxpp/mxpp/portal"
	"github.com/mxpp/mxpp/xmpp"
)

// Each Matrix user may make the bridge send 20 XEP-0249 invitations at
// once, then one a minute: an invitation is a message to any XMPP address.
const (
	invitationEvery = time.Minute
	invitationBurst = 20
)

// mayInvite reports whether a Matrix user's invitation may go to XMPP now:
// users with permission, at the rate above. A refusal is audited.
func (b *Bridge) mayInvite(u id.UserID) bool {
	if !b.Config.hasLevel(u, LevelUser) {
		return false
	}
	if !b.invitations.Allow(u.String(), time.Now()) {
		b.Audit.Warn().Str("action", "invite").Stringer("by", u).Str("result", "rate-limited").Msg("invitation")
		return false
	}
	return true
}

// handleUnbridgedEvent handles events of rooms without a portal. Only
// invitations matter there: the bot accepts its own, a puppet invited to a
// direct chat accepts it, and an XMPP user whose puppet was invited to a
// room gets an XEP-0249 invitation to the room's MUC.
func (b *Bridge) handleUnbridgedEvent(ctx context.Context, evt *event.Event) {
	if evt.Type != event.StateMember || evt.StateKey == nil || b.Matrix.IsBridgeUser(evt.Sender) {
		return
	}
	content := evt.Content.AsMember()
	target := id.UserID(*evt.StateKey)
	if content.Membership != event.MembershipInvite {
		return
	}
	log := zerolog.Ctx(ctx).With().Stringer("room_id", evt.RoomID).Stringer("inviter", evt.Sender).Logger()
	if !b.Config.hasLevel(evt.Sender, LevelUser) {
		// Neither the bot nor a puppet acts for someone who may not use
		// the bridge: no join, no invitation sent to XMPP.
		log.Info().Stringer("invitee", target).Msg("Ignoring an invitation from a user without permission")
		return
	}
	if target == b.Matrix.BotID() {
		// Handled off the transaction: joining is a homeserver round trip.
		go func() {
			if err := b.Matrix.JoinBot(b.ctx, evt.RoomID); err != nil {
				log.Warn().Err(err).Msg("Bridge bot failed to accept an invitation")
			} else {
				log.Info().Msg("Bridge bot accepted an invitation")
			}
		}()
		return
	}
	remote, ok := b.Matrix.ParsePuppetID(target)
	if !ok {
		return
	}
	if content.IsDirect {
		// Handled off the transaction: several homeserver round trips.
		go b.acceptDirect(evt, target, remote)
		return
	}
	if open, err := b.roomOpen(ctx, evt.RoomID); err != nil || !open {
		log.Info().Stringer("puppet", target).Msg("Not inviting an XMPP user to a room that is not open to XMPP")
		return
	}
	invitee, err := xmpp.ParseJID(remote)
	if err != nil {
		return
	}
	alias, _ := matrix.StrippedAlias(evt)
	room, err := portal.MUCJID(b.scheme, alias)
	if _, server, ok := portal.SplitAlias(alias); !ok || server != b.Config.Homeserver.Domain || err != nil {
		log.Info().Stringer("jid", invitee).Stringer("alias", alias).
			Msg("Cannot invite an XMPP user to a room without an address on this bridge")
		return
	}
	if !b.mayInvite(evt.Sender) {
		log.Warn().Stringer("jid", invitee).Msg("Not inviting an XMPP user: the inviter sent too many invitations")
		return
	}
	log.Info().Stringer("jid", invitee).Stringer("muc", room).Msg("Inviting XMPP user to a room")
	b.send(ctx, portal.DirectInvitation(b.scheme, room, evt.Sender, invitee, content.Reason))
}
