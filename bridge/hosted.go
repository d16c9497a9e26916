package bridge

import (
	"fmt"

	"github.com/mxpp/mxpp/database"
	"github.com/mxpp/mxpp/portal"
)

// startHosted runs the portal of a room the component hosts or of a direct
// chat, or returns the one already running.
func (b *Bridge) startHosted(row *database.Portal) (*portal.Portal, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if p := b.byRoom[row.RoomID]; p != nil {
		if hosted, ok := p.(*portal.Portal); ok {
			return hosted, nil
		}
		return nil, fmt.Errorf("room %s runs a portal of another kind", row.RoomID)
	}
	newPortal := portal.New
	if row.IsDirect() {
		newPortal = portal.NewDirect
	}
	p, err := newPortal(row, b.portalDeps())
	if err != nil {
		return nil, err
	}
	b.byRoom[row.RoomID] = p
	if row.IsDirect() {
		b.byDirect[directKey(row.DMUser, row.DMJID, row.DMVia)] = p
	} else {
		b.byMUC[row.MUCLocal] = p
	}
	p.Start(b.ctx)
	return p, nil
}

// portalDeps returns what every hosted portal and direct chat is given:
// one set for all, made with the first (a bridge at size runs thousands).
// Called with b.mu held.
func (b *Bridge) portalDeps() *portal.Deps {
	if b.hostedDeps == nil {
		b.hostedDeps = &portal.Deps{
			Matrix:           b.Matrix,
			XMPP:             b.XMPP,
			DB:               b.DB,
			Scheme:           b.scheme,
			HomeserverDomain: b.Config.Homeserver.Domain,
			OccupantIDKey:    b.occupantIDKey,
			Permitted:        b.permitted,
			MayInvite:        b.mayInvite,
			HistoryMessages:  b.Config.Bridge.HistoryMessages,

			OccupantCheckInterval: b.Config.Bridge.OccupantCheckInterval,
			Avatars:               b.avatars,
			PuppetAvatars:         b.puppetAvatars,
			MediaLinks:            b.mediaLinks,
			Fetcher:               b.fetcher,
			Policy:                b.policy,
			HomeDomain:            homeDomain(b.XMPP.Domain().String()),
			Banned:                b.isBanned,
			Audit:                 b.Audit,
			MemberPresence:        b.memberPresence,
			Private:               b.privateMessage,
			PrivateMoved:          b.privateMoved,
			PuppetPresence:        b.occupantPresence,
			IsCommand:             b.isCommand,
			Metrics:               b.portalMetrics(),
			Log:                   b.Log.With().Str("component", "portal").Logger(),
			OnGone:                func(p *portal.Portal) { b.forgetPortal(p) },
			OnMoved:               b.portalMoved,
		}
	}
	return b.hostedDeps
}
