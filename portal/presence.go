package portal

import (
	"context"

	"maunium.net/go/mautrix/id"
	"mellium.im/xmpp/jid"

	"github.com/mxpp/mxpp/xmpp"
)

// PresenceChanged tells a portal that a Matrix user's presence changed:
// their occupant presence, if they are a member, goes to every session
// again (XEP-0045 §7.7), with the show and status the bridge now knows
// (Deps.MemberPresence).
type PresenceChanged struct{ User id.UserID }

// handlePresenceChanged sends a member's presence again.
func (p *Portal) handlePresenceChanged(ctx context.Context, user id.UserID) {
	m := p.roster.members[user]
	if m == nil || m.nick == "" {
		return
	}
	p.broadcast(ctx, nil, func(to jid.JID) any { return p.availablePresence(m.userID, m.nick, to, p.memberItem(m)) })
}

// puppetPresence tells the homeserver what an XMPP occupant's presence
// is: available with their show and status while a session is joined,
// offline when the last one left.
func (p *Portal) puppetPresence(occ *occupant, pres *xmpp.Presence) {
	if p.deps.PuppetPresence == nil || occ == nil {
		return
	}
	if pres == nil {
		p.deps.PuppetPresence(occ.puppet, "", "", false)
		return
	}
	p.deps.PuppetPresence(occ.puppet, pres.Show, pres.Status, true)
}
