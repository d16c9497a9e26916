package bridge

import (
	"context"

	"github.com/rs/zerolog"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/mxpp/mxpp/matrix"
	"github.com/mxpp/mxpp/portal"
	"github.com/mxpp/mxpp/xmpp"
)

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
	log.Info().Stringer("jid", invitee).Stringer("muc", room).Msg("Inviting XMPP user to a room")
	b.send(ctx, portal.DirectInvitation(b.scheme, room, evt.Sender, invitee, content.Reason))
}
