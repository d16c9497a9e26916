package portal

import (
	"context"

	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"github.com/mxpp/mxpp/xmpp"
)

// policy is the domain policy of this room: the bridge's, with the room's
// own lists applied.
func (p *Portal) policy() xmpp.DomainPolicy {
	if p.settings == nil {
		return p.deps.Policy
	}
	return p.deps.Policy.Override(p.settings.AllowedDomains, p.settings.DeniedDomains)
}

// refusal is why a JID may not join this room, or nil.
func (p *Portal) refusal(bare jid.JID) *stanza.Error {
	if !p.policy().Allows(bare.Domainpart()) {
		return xmpp.StanzaError(stanza.Forbidden, "Your server is not allowed in this room")
	}
	if p.deps.Banned != nil && p.deps.Banned(bare.String()) {
		return xmpp.StanzaError(stanza.Forbidden, "You are banned from this bridge")
	}
	return nil
}

// Control events are sent to a portal by the bridge's commands.
type (
	// Unexpose closes the room to XMPP: every occupant is removed and the
	// portal deletes itself.
	Unexpose struct{ Done chan struct{} }
	// SettingsChanged makes the portal reload its settings and remove
	// occupants whose server is no longer allowed.
	SettingsChanged struct{ Done chan struct{} }
	// Remove takes an XMPP user out of the room, as a bridge admin's kick
	// or ban.
	Remove struct {
		Bare   jid.JID
		Reason string
		Ban    bool
		Done   chan bool // true if the user was in the room
	}
)

func (p *Portal) handleControl(ctx context.Context, evt any) (alive bool) {
	switch e := evt.(type) {
	case Unexpose:
		defer close(e.Done)
		p.destroy(ctx, jid.JID{}, "The room was closed to XMPP")
		return false
	case SettingsChanged:
		defer close(e.Done)
		settings, err := p.deps.DB.Settings.Get(ctx, p.RoomID)
		if err != nil {
			p.log.Error().Err(err).Msg("Failed to reload room settings")
			return true
		}
		p.settings = settings
		for _, o := range p.occupants {
			if serr := p.refusal(o.bare); serr != nil {
				p.removeByBridge(ctx, o, serr.Error(), false)
			}
		}
	case Remove:
		o := p.occupants[e.Bare.String()]
		if o != nil {
			p.removeByBridge(ctx, o, e.Reason, e.Ban)
		}
		e.Done <- o != nil
	case PresenceChanged:
		p.handlePresenceChanged(ctx, e.User)
	case Moved:
		// Only private chats have sides that move.
	}
	return true
}

// removeByBridge removes an occupant by the bridge's decision: every
// session gets the removal (307, or 301 for a ban) with the reason, the
// others see it, and the puppet leaves Matrix.
func (p *Portal) removeByBridge(ctx context.Context, o *occupant, reason string, ban bool) {
	code := xmpp.StatusKicked
	item := p.occupantItem(o, jid.JID{})
	if ban {
		code, item.Affiliation = xmpp.StatusBanned, xmpp.AffOutcast
	}
	item.Reason = reason
	sessions := o.jids()
	p.dropOccupant(ctx, o)
	for _, s := range sessions {
		p.send(ctx, p.unavailablePresence(o.puppet, o.nick, s, item, code, xmpp.StatusSelf))
	}
	p.broadcast(ctx, nil, func(to jid.JID) any { return p.unavailablePresence(o.puppet, o.nick, to, item, code) })
	if err := p.deps.Matrix.LeavePuppet(ctx, p.RoomID, o.puppet, reason); err != nil {
		p.log.Error().Err(err).Stringer("puppet", o.puppet).Msg("Puppet failed to leave the Matrix room")
	}
	p.deps.Audit.Info().Str("action", "remove").Stringer("jid", o.bare).Stringer("room_id", p.RoomID).Bool("ban", ban).
		Str("reason", reason).Msg("XMPP user removed from a room by the bridge")
}
