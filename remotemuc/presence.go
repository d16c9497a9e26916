package remotemuc

import (
	"context"
	"math/rand/v2"
	"strings"
	"time"

	"maunium.net/go/mautrix/id"
	"mellium.im/xmpp/jid"

	"github.com/mxpp/mxpp/database"
	"github.com/mxpp/mxpp/matrix"
	"github.com/mxpp/mxpp/msgconv"
	"github.com/mxpp/mxpp/xmpp"
)

// memberByJID returns the member a stanza from the room was sent to, or
// nil: a stale occupant the bridge no longer has.
func (p *Portal) memberByJID(to jid.JID) *member {
	for _, m := range p.members {
		if m.occ.From.Equal(to) {
			return m
		}
	}
	return nil
}

// handleXMPPPresence follows the room's occupants as one of ours sees
// them. The room sends every presence to each of our occupants: all of it
// is handled so that it does not matter which copy comes first.
func (p *Portal) handleXMPPPresence(ctx context.Context, pres *xmpp.Presence) {
	p.heard()
	m := p.memberByJID(pres.To.JID)
	if m == nil {
		p.log.Debug().Stringer("to", pres.To).Msg("Ignoring presence to an occupant the portal does not have")
		return
	}
	if pres.Type == xmpp.TypeError || pres.HasStatus(xmpp.StatusSelf) {
		p.handleOwnPresence(ctx, m, pres)
		return
	}
	nick := pres.From.Resourcepart()
	if nick == "" || pres.Type != "" && pres.Type != xmpp.TypeUnavailable || p.isOurs(nick, pres) {
		return
	}
	p.handleOtherPresence(ctx, nick, pres)
}

// handleOwnPresence hands our occupant what the room says of it: the
// answer to a join, a nick change, a removal.
func (p *Portal) handleOwnPresence(ctx context.Context, m *member, pres *xmpp.Presence) {
	before := m.occ.State()
	out := m.occ.HandlePresence(pres)
	switch after := m.occ.State(); {
	case after == Joined:
		m.link = p.deps.XMPP.Link()
		if m.told {
			p.notice(ctx, p.mention(m)+"back in "+p.room.String()+"; what waited is on its way.", "")
		}
		m.rejoins, m.told = 0, false
		if p.muc.OccupantIDs && pres.OccupantID != nil {
			m.occupantID = pres.OccupantID.ID
		}
		if before != Joined {
			p.log.Info().Stringer("user_id", m.user).Str("nick", m.occ.Nick()).Msg("Matrix user joined the MUC")
			p.auditJoin(m, "joined")
			if p.confirming {
				p.dropUnconfirmed(ctx)
			}
			switch {
			case p.gap:
				// The first of ours back after none of them was in (the
				// bridge was away, or the room lost them).
				p.gap = false
				if p.startCatchUp(ctx, m); p.catching == nil {
					p.resendLost(ctx, false)
				}
			case p.catching == nil && p.joinedMembers() == 1:
				// The first of ours in a room nobody of ours listened to:
				// what was said before is not caught up later.
				p.noteStart(ctx)
			}
		}
		if p.catching != nil {
			out.Send = p.deferMessages(m, out.Send)
		}
		p.setLevel(ctx, m.user, firstItem(pres.MUCUser))
		p.storeMember(ctx, m)
	case after == Out && before != Out:
		m.active = false
		p.storeMember(ctx, m)
		p.auditJoin(m, "refused or removed")
		p.log.Info().Stringer("user_id", m.user).Str("notice", out.Notice).Msg("The MUC refused or removed a Matrix user")
	case after == Lost && before != Lost:
		p.log.Info().Stringer("user_id", m.user).Msg("The MUC dropped a Matrix user's occupant; joining again")
		p.lost()
		p.rejoinLater(m)
	}
	p.apply(ctx, m, out)
	if out.Removed != "" {
		// The Matrix room shows who is in the MUC: the user goes too, and
		// may join again.
		if err := p.deps.Matrix.Kick(ctx, p.RoomID, p.deps.Matrix.BotID(), m.user, out.Removed); err != nil {
			p.log.Warn().Err(err).Stringer("user_id", m.user).Msg("Failed to take a removed user out of the portal room")
		}
	}
}

// auditJoin records a Matrix user joining, or being put out of, a room on
// another domain than the XMPP server's own.
func (p *Portal) auditJoin(m *member, result string) {
	if p.room.Domainpart() == p.deps.HomeDomain || strings.HasSuffix(p.room.Domainpart(), "."+p.deps.HomeDomain) {
		return
	}
	p.deps.Audit.Info().Str("action", "join_remote").Stringer("user_id", m.user).Stringer("muc", p.room).
		Stringer("room_id", p.RoomID).Str("result", result).Msg("A Matrix user in a MUC on another domain")
}

// lost notes that an occupant of ours is no longer in the room: when none
// is, what the room says now is heard by nobody, and the next one in
// catches up.
func (p *Portal) lost() {
	if p.joinedMembers() == 0 {
		p.gap = true
	}
}

// joinedMembers counts our occupants that are in.
func (p *Portal) joinedMembers() int {
	n := 0
	for _, m := range p.members {
		if m.occ.State() == Joined {
			n++
		}
	}
	return n
}

// noteStart makes now the point a later catch-up starts from.
func (p *Portal) noteStart(ctx context.Context) {
	p.stored.LastStanzaID, p.stored.LastTime = "", time.Now()
	if err := p.deps.DB.RemoteRoom.SetLast(ctx, p.RoomID, "", p.stored.LastTime); err != nil {
		p.log.Error().Err(err).Msg("Failed to note where a catch-up would start")
	}
}

// storeMember keeps a member's nick and standing across restarts.
func (p *Portal) storeMember(ctx context.Context, m *member) {
	err := p.deps.DB.RemoteOccupant.Upsert(ctx, &database.RemoteOccupant{RoomID: p.RoomID, UserID: m.user, Nick: m.occ.Tried(), Active: m.active})
	if err != nil {
		p.log.Error().Err(err).Stringer("user_id", m.user).Msg("Failed to store an occupant")
	}
}

// rejoinDue asks the loop to join a lost occupant again.
type rejoinDue struct {
	user id.UserID
}

// toldAfter is the number of failed rejoins after which the user hears
// that getting back in takes a while (after about twenty seconds).
const toldAfter = 4

// rejoinLater joins a lost occupant again after a backoff that grows with
// each try (up to ten minutes), with jitter so that the occupants of a
// restarted service do not all come back at once.
func (p *Portal) rejoinLater(m *member) {
	wait := min(time.Second<<min(m.rejoins, 10), 10*time.Minute)
	wait += time.Duration(rand.Int64N(int64(wait)/2 + 1))
	user := m.user
	time.AfterFunc(wait, func() { p.Queue(p.Context(), rejoinDue{user: user}) })
}

func (p *Portal) handleRejoinDue(ctx context.Context, r rejoinDue) {
	m := p.members[r.user]
	if m == nil || !m.active || m.occ.State() != Lost {
		return
	}
	if m.rejoins++; m.rejoins == toldAfter {
		m.told = true
		p.notice(ctx, p.mention(m)+"the bridge cannot get you back into "+p.room.String()+
			" at the moment (it or its server is unreachable). It keeps trying; your messages wait until you are in.", "")
	}
	p.apply(ctx, m, p.rejoin(m))
}

// isOurs reports whether a presence under a nick is one of our own
// occupants, seen by another of ours: by the nick it holds or tries, its
// occupant-id, or a real JID on the bridge's own domain. The bridge never
// makes a puppet of its own users.
func (p *Portal) isOurs(nick string, pres *xmpp.Presence) bool {
	for _, m := range p.members {
		if m.occ.Claims(nick) {
			return true
		}
		if p.muc.OccupantIDs && pres.OccupantID != nil && m.occupantID != "" && pres.OccupantID.ID == m.occupantID {
			return true
		}
	}
	if item := firstItem(pres.MUCUser); !item.JID.IsZero() && item.JID.Domainpart() == p.deps.Scheme.Domain.Domainpart() {
		return true
	}
	return false
}

func firstItem(x *xmpp.MUCUser) xmpp.MUCItem {
	if x == nil || len(x.Items) == 0 {
		return xmpp.MUCItem{}
	}
	return x.Items[0]
}

// handleOtherPresence follows another occupant: its puppet joins the
// Matrix room when it comes, follows its nick, and leaves (or is kicked or
// banned) when it goes.
func (p *Portal) handleOtherPresence(ctx context.Context, nick string, pres *xmpp.Presence) {
	x := p.others.get(nick)
	item := firstItem(pres.MUCUser)
	switch {
	case pres.Type == xmpp.TypeUnavailable && pres.HasStatus(xmpp.StatusNewNick):
		if x != nil && item.Nick != "" && item.Nick != nick {
			p.others.rename(x, item.Nick)
			p.storeRoomPuppet(ctx, x)
			if from, err := p.room.WithResource(nick); err == nil && p.deps.PrivateMoved != nil {
				if to, err := p.room.WithResource(item.Nick); err == nil {
					p.deps.PrivateMoved(ctx, from, to)
				}
			}
		}
	case pres.Type == xmpp.TypeUnavailable:
		if x == nil {
			return
		}
		p.others.remove(x)
		p.removeOther(ctx, x, pres, item)
	default:
		if x == nil {
			x = p.identify(ctx, nick, pres.OccupantID, item)
		}
		x.present = true
		x.affiliation, x.role = item.Affiliation, item.Role
		if p.showOther(ctx, x) {
			p.setLevel(ctx, x.puppet, item)
			if p.deps.PuppetPresence != nil {
				p.deps.PuppetPresence(x.puppet, pres.Show, pres.Status, true)
			}
		}
	}
}

// PresenceChanged tells the portal that a Matrix user's presence changed:
// their occupant, if joined, tells the room (a status change, XEP-0045
// §7.7), with the show and status Deps.MemberPresence gives; one still
// joining tells it once in (Occupant.Status).
type PresenceChanged struct{ User id.UserID }

func (p *Portal) handlePresenceChanged(ctx context.Context, user id.UserID) {
	if m := p.members[user]; m != nil {
		p.apply(ctx, m, m.occ.Status())
	}
}

// identify finds who an occupant is and makes its entry (see other).
func (p *Portal) identify(ctx context.Context, nick string, oid *xmpp.OccupantID, item xmpp.MUCItem) *other {
	x := &other{nick: nick}
	if p.muc.OccupantIDs && oid != nil {
		x.occupantID = oid.ID
	}
	switch {
	case p.muc.NonAnonymous && !item.JID.IsZero():
		bare := item.JID.Bare()
		x.key, x.puppet = bare.String(), p.deps.Matrix.PuppetID(bare.String())
	default:
		x.token = p.others.tokens[msgconv.NickKey(nick)]
		if x.occupantID != "" {
			x.token = xmpp.OccupantToken(x.occupantID, "")
		} else if x.token == "" {
			x.token = xmpp.OccupantToken("", nick)
		}
		x.key = p.room.String() + "/" + x.token
		x.puppet = p.deps.Matrix.RoomPuppetID(p.room.String(), x.token)
		p.storeRoomPuppet(ctx, x)
	}
	p.others.put(x)
	return x
}

// storeRoomPuppet keeps a room puppet's nick, so that a room without
// occupant-ids knows the occupant again after a restart.
func (p *Portal) storeRoomPuppet(ctx context.Context, x *other) {
	if x.token == "" {
		return
	}
	p.others.tokens[msgconv.NickKey(x.nick)] = x.token
	err := p.deps.DB.RoomPuppet.Upsert(ctx, &database.RoomPuppet{RoomID: p.RoomID, Token: x.token, MXID: x.puppet, Nick: x.nick})
	if err != nil {
		p.log.Error().Err(err).Msg("Failed to store a room puppet")
	}
}

// showOther puts an occupant's puppet in the Matrix room under its nick,
// and reports whether it is there.
func (p *Portal) showOther(ctx context.Context, x *other) bool {
	if x.onMatrix && x.shownAs == x.nick {
		return true
	}
	var err error
	if x.onMatrix {
		err = p.deps.Matrix.SetPuppetRoomName(ctx, p.RoomID, x.puppet, x.nick)
	} else {
		err = p.deps.Matrix.JoinPuppet(ctx, p.RoomID, x.puppet, x.nick)
	}
	if err != nil {
		p.log.Warn().Err(err).Stringer("puppet", x.puppet).Msg("Failed to show an occupant of the MUC on Matrix")
		return x.onMatrix
	}
	x.onMatrix, x.shownAs = true, x.nick
	p.info.Members[x.puppet] = matrix.Member{Displayname: x.nick}
	return true
}

// removeOther takes a departed occupant's puppet out of the Matrix room:
// kicked or banned as the room did it (307, 301), with who and why, or
// leaving.
func (p *Portal) removeOther(ctx context.Context, x *other, pres *xmpp.Presence, item xmpp.MUCItem) {
	if !x.onMatrix {
		return
	}
	x.onMatrix = false
	delete(p.info.Members, x.puppet)
	if p.deps.PuppetPresence != nil {
		p.deps.PuppetPresence(x.puppet, "", "", false)
	}
	reason := item.Reason
	if item.Actor != nil && item.Actor.Nick != "" {
		reason = "by " + item.Actor.Nick + withReason(reason)
	}
	bot := p.deps.Matrix.BotID()
	var err error
	switch {
	case pres.HasStatus(xmpp.StatusBanned):
		err = p.deps.Matrix.Ban(ctx, p.RoomID, bot, x.puppet, "Banned from the XMPP room "+reason)
	case pres.HasStatus(xmpp.StatusKicked):
		err = p.deps.Matrix.Kick(ctx, p.RoomID, bot, x.puppet, "Kicked from the XMPP room "+reason)
	default:
		err = p.deps.Matrix.LeavePuppet(ctx, p.RoomID, x.puppet, "Left the XMPP room")
	}
	if err != nil {
		p.log.Warn().Err(err).Stringer("puppet", x.puppet).Msg("Failed to take a departed occupant's puppet out of the Matrix room")
	}
}

func withReason(reason string) string {
	if reason == "" {
		return ""
	}
	return ": " + reason
}

// rejoinAll joins every member again: after the component link came back
// or the bridge started, the room may have put them out meanwhile (a
// service removes occupants whose stanzas bounce). The room then tells the
// occupants again; puppets of those it no longer lists leave once the
// first of ours is back in (dropUnconfirmed).
func (p *Portal) rejoinAll(ctx context.Context) {
	joining := false
	also := p.sinceLastMapped(ctx)
	for _, m := range p.members {
		if !m.active || !p.permitted(m.user) {
			continue
		}
		p.apply(ctx, m, p.rejoinSince(m, also))
		also = time.Time{} // one history check is enough
		joining = true
	}
	if joining {
		for _, x := range p.others.byNick {
			x.present = false
		}
		p.confirming, p.gap = true, true
	}
}

// dropUnconfirmed takes out of the Matrix room the puppets of this room
// that the room did not list again when one of ours joined: they left
// while the bridge was away.
func (p *Portal) dropUnconfirmed(ctx context.Context) {
	p.confirming = false
	present := map[id.UserID]bool{}
	for _, x := range p.others.byNick {
		if x.present {
			present[x.puppet] = true
		} else {
			p.others.remove(x)
		}
	}
	for u := range p.info.Members {
		if u == p.deps.Matrix.BotID() || !p.deps.Matrix.IsBridgeUser(u) || present[u] {
			continue
		}
		if err := p.deps.Matrix.LeavePuppet(ctx, p.RoomID, u, "Left the XMPP room"); err != nil {
			p.log.Warn().Err(err).Stringer("puppet", u).Msg("Failed to take a departed occupant's puppet out of the Matrix room")
		}
		delete(p.info.Members, u)
	}
}
