package portal

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"

	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
	"mellium.im/xmpp/jid"

	"github.com/mxpp/mxpp/xmpp"
)

// Power levels map to XEP-0045 affiliations and roles:
//
//	level >= the level to change power levels (the room's admins)  owner, moderator
//	level >= the lowest of kick, ban and redact (moderators)       admin, moderator
//	level below what sending a message needs                        member, visitor
//	anyone else                                                     member, participant
type standing struct{ affiliation, role string }

func (p *Portal) powerLevels() *event.PowerLevelsEventContent {
	if p.info.PowerLevels == nil {
		p.info.PowerLevels = &event.PowerLevelsEventContent{}
	}
	return p.info.PowerLevels
}

func adminLevel(pl *event.PowerLevelsEventContent) int {
	return pl.GetEventLevel(event.StatePowerLevels)
}

func moderatorLevel(pl *event.PowerLevelsEventContent) int {
	return min(pl.Kick(), pl.Ban(), pl.Redact())
}

func speakLevel(pl *event.PowerLevelsEventContent) int {
	return pl.GetEventLevel(event.EventMessage)
}

// standingOf is a Matrix user's affiliation and role in the MUC.
func (p *Portal) standingOf(userID id.UserID) standing {
	pl := p.powerLevels()
	level := pl.GetUserLevel(userID)
	switch {
	case level >= adminLevel(pl):
		return standing{xmpp.AffOwner, xmpp.RoleModerator}
	case level >= moderatorLevel(pl):
		return standing{xmpp.AffAdmin, xmpp.RoleModerator}
	case level < speakLevel(pl):
		return standing{xmpp.AffMember, xmpp.RoleVisitor}
	}
	return standing{xmpp.AffMember, xmpp.RoleParticipant}
}

// moderated reports whether a new member cannot speak (muc_moderated).
func (p *Portal) moderated() bool {
	pl := p.powerLevels()
	return pl.UsersDefault < speakLevel(pl)
}

// occupantID is the XEP-0421 id of a user in this room: an HMAC of the room
// and the user, so it is stable, differs between rooms and reveals neither.
func (p *Portal) occupantID(userID id.UserID) *xmpp.OccupantID {
	mac := hmac.New(sha256.New, p.deps.OccupantIDKey)
	mac.Write([]byte(p.RoomID))
	mac.Write([]byte{0})
	mac.Write([]byte(userID))
	return &xmpp.OccupantID{ID: base64.RawURLEncoding.EncodeToString(mac.Sum(nil)[:18])}
}

// userOfNick returns the Matrix user (a member or an occupant's puppet)
// holding a nick.
func (p *Portal) userOfNick(nick string) (id.UserID, bool) {
	return p.roster.owns(nick)
}

// occupantOf returns the occupant whose puppet is userID.
func (p *Portal) occupantOf(userID id.UserID) *occupant {
	for _, o := range p.occupants {
		if o.puppet == userID {
			return o
		}
	}
	return nil
}

// nickOf returns the nick of a Matrix user or puppet in the MUC, or "".
func (p *Portal) nickOf(userID id.UserID) string {
	if m := p.roster.members[userID]; m != nil {
		return m.nick
	}
	if o := p.occupantOf(userID); o != nil {
		return o.nick
	}
	return ""
}

// handlePowerLevels follows a power levels change: occupants whose
// affiliation or role changed get new presence at once (XEP-0045 §9.6).
func (p *Portal) handlePowerLevels(ctx context.Context, evt *event.Event) {
	before := map[id.UserID]standing{}
	for u := range p.roster.members {
		before[u] = p.standingOf(u)
	}
	for _, o := range p.occupants {
		before[o.puppet] = p.standingOf(o.puppet)
	}
	pl := evt.Content.AsPowerLevels()
	pl.CreateEvent = p.powerLevels().CreateEvent
	p.info.PowerLevels = pl
	for u, old := range before {
		if p.standingOf(u) == old {
			continue
		}
		if m := p.roster.members[u]; m != nil {
			p.broadcast(ctx, nil, func(to jid.JID) any { return p.availablePresence(m.userID, m.nick, to, p.memberItem(m)) })
		} else if o := p.occupantOf(u); o != nil {
			p.broadcastOccupant(ctx, o, nil)
		}
	}
}

// broadcastOccupant sends an occupant's presence to every session, with
// status 110 for its own; mutate, if set, adds to each presence.
func (p *Portal) broadcastOccupant(ctx context.Context, o *occupant, mutate func(*xmpp.Presence)) {
	for _, other := range p.occupants {
		for _, s := range other.jids() {
			var status []int
			if other == o {
				status = []int{xmpp.StatusSelf}
			}
			pres := p.availablePresence(o.puppet, o.nick, s, p.occupantItem(o, jid.JID{}), status...)
			if mutate != nil {
				mutate(pres)
			}
			p.send(ctx, pres)
		}
	}
}

// actor names who kicked or banned someone: by nick if they are in the
// MUC, else by their address on the component.
func (p *Portal) actor(userID id.UserID) *xmpp.MUCActor {
	if nick := p.nickOf(userID); nick != "" {
		return &xmpp.MUCActor{Nick: nick}
	}
	return &xmpp.MUCActor{JID: xmpp.A(p.jidOfUser(userID))}
}
