package portal

import (
	"context"

	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"github.com/mxpp/mxpp/xmpp"
)

// DirectInvitation is the XEP-0249 invitation an XMPP user gets when a
// Matrix user invites its puppet: from the inviter's contact JID, pointing
// to the room's MUC.
func DirectInvitation(scheme xmpp.Scheme, room jid.JID, inviter id.UserID, invitee jid.JID, reason string) *xmpp.Message {
	from := room
	if local, server, err := inviter.Parse(); err == nil {
		if j, err := scheme.UserJID(local, server); err == nil {
			from = j
		}
	}
	return &xmpp.Message{ID: xmpp.RandomID(), From: xmpp.A(from), To: xmpp.A(invitee.Bare()),
		DirectInvite: &xmpp.DirectInvite{JID: xmpp.A(room), Reason: reason}}
}

// invitedOnMatrix sends the XMPP user whose puppet was invited an XEP-0249
// invitation.
func (p *Portal) invitedOnMatrix(ctx context.Context, puppet, inviter id.UserID, reason string) {
	remote, ok := p.deps.Matrix.ParsePuppetID(puppet)
	if !ok {
		return
	}
	invitee, err := xmpp.ParseJID(remote)
	if err != nil {
		return
	}
	if p.deps.MayInvite != nil && !p.deps.MayInvite(inviter) {
		p.log.Info().Stringer("jid", invitee).Stringer("inviter", inviter).
			Msg("Not inviting an XMPP user: the inviter may not use the bridge, or sent too many invitations")
		return
	}
	p.log.Info().Stringer("jid", invitee).Stringer("inviter", inviter).Msg("Inviting XMPP user to the room")
	p.send(ctx, DirectInvitation(p.deps.Scheme, p.roomJID, inviter, invitee, reason))
}

// mayJoin reports whether a new occupant may join: anyone in an open room,
// in a members-only room only those whose puppet is invited or joined.
func (p *Portal) mayJoin(puppet id.UserID) bool {
	if p.info.JoinRule == event.JoinRulePublic {
		return true
	}
	_, member := p.info.Members[puppet]
	return member || p.info.Invited[puppet]
}

// handleMediatedInvite handles an occupant's invitation to another JID
// (XEP-0045 §7.8.2): that JID's Matrix user, or puppet, is invited on
// Matrix by the occupant's puppet, and an XMPP invitee gets the room's
// invitation.
func (p *Portal) handleMediatedInvite(ctx context.Context, msg *xmpp.Message) {
	reject := func(serr *stanza.Error) {
		p.refuse(ctx, msg, serr)
	}
	occ, ok := p.session(msg.From.JID)
	if !ok {
		reject(xmpp.StanzaError(stanza.NotAcceptable, "Only occupants may invite"))
		return
	}
	for _, inv := range msg.MUCUser.Invite {
		target, ok := p.userOfJID(inv.To.JID)
		if inv.To.IsZero() || !ok {
			reject(xmpp.StanzaError(stanza.JIDMalformed, "Invitations need a JID to invite"))
			return
		}
		if err := p.deps.Matrix.Invite(ctx, p.RoomID, occ.puppet, target, inv.Reason); err != nil {
			p.log.Info().Err(err).Stringer("target", target).Msg("Invitation refused on Matrix")
			reject(matrixError(err, "You may not invite to this room"))
			return
		}
		p.info.Invite(target)
		if _, isPuppet := p.deps.Matrix.ParsePuppetID(target); isPuppet {
			p.send(ctx, &xmpp.Message{ID: xmpp.RandomID(), From: xmpp.A(p.roomJID), To: xmpp.A(inv.To.Bare()),
				MUCUser: &xmpp.MUCUser{Invite: []xmpp.MUCInvite{{From: xmpp.A(occ.bare), Reason: inv.Reason}}}})
		}
		p.log.Info().Stringer("jid", occ.bare).Stringer("target", target).Msg("Invited on behalf of an occupant")
	}
}
