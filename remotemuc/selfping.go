package remotemuc

import (
	"context"
	"errors"
	"time"

	"maunium.net/go/mautrix/id"
	"mellium.im/xmpp/stanza"

	"github.com/mxpp/mxpp/xmpp"
)

// Liveness. A room that went quiet may have lost our occupants without
// telling them (a restart of the service, an outage between the servers):
// after Deps.CheckInterval of silence each of ours pings its own occupant
// JID (XEP-0410), and one the room no longer counts in joins again.

// CheckQuiet asks the portal to self-ping its occupants if the room has
// been quiet for the check interval.
type CheckQuiet struct{}

// selfPingTimeout bounds a self-ping; no answer in that time says nothing
// (the room or the link is slow), and the next check tries again.
const selfPingTimeout = 30 * time.Second

// selfPingDone is the answer to a self-ping, back on the loop.
type selfPingDone struct {
	user id.UserID
	nick string
	err  error
}

// heard notes that the room said something.
func (p *Portal) heard() { p.lastHeard = time.Now() }

func (p *Portal) checkQuiet() {
	interval := p.deps.CheckInterval
	if interval <= 0 || time.Since(p.lastHeard) < interval {
		return
	}
	for _, m := range p.members {
		nick := m.occ.Nick()
		if nick == "" || p.pinging[m.user] {
			continue
		}
		to, err := p.room.WithResource(nick)
		if err != nil {
			continue
		}
		p.pinging[m.user] = true
		user, from := m.user, m.occ.From
		go func() {
			ctx, cancel := context.WithTimeout(p.Context(), min(max(interval, 5*time.Second), selfPingTimeout))
			defer cancel()
			_, err := p.deps.XMPP.SendIQ(ctx, &xmpp.IQ{Type: xmpp.TypeGet, From: xmpp.A(from), To: xmpp.A(to), Body: pingQuery{}})
			p.Queue(p.Context(), selfPingDone{user: user, nick: nick, err: err})
		}()
	}
}

// stillJoined reads a self-ping's answer as XEP-0410 §3.2 does: an answer,
// or service-unavailable, feature-not-implemented or item-not-found from
// the pinged client, mean joined; no answer, or remote-server-not-found or
// remote-server-timeout (the room's server cannot be reached: it says
// nothing of the room), means nothing; any other error means not joined.
func stillJoined(err error) (joined, known bool) {
	var serr stanza.Error
	switch {
	case err == nil:
		return true, true
	case errors.As(err, &serr):
		switch serr.Condition {
		case stanza.ServiceUnavailable, stanza.FeatureNotImplemented, stanza.ItemNotFound:
			return true, true
		case stanza.RemoteServerNotFound, stanza.RemoteServerTimeout:
			return false, false
		}
		return false, true
	}
	return false, false // no answer, or not sent
}

func (p *Portal) handleSelfPing(ctx context.Context, d selfPingDone) {
	delete(p.pinging, d.user)
	m := p.members[d.user]
	if m == nil || m.occ.State() != Joined || m.occ.Nick() != d.nick {
		return // left, or renamed, meanwhile
	}
	joined, known := stillJoined(d.err)
	switch {
	case !known:
		p.log.Debug().Err(d.err).Stringer("user_id", d.user).Msg("Self-ping in the MUC went unanswered; trying again later")
	case !joined:
		p.log.Info().Err(d.err).Stringer("user_id", d.user).Msg("The MUC no longer counts a Matrix user in; joining again")
		m.occ.Lost()
		p.lost()
		p.apply(ctx, m, p.rejoin(m))
	}
}
