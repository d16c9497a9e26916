package remotemuc

import (
	"context"
	"errors"
	"time"

	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
	"mellium.im/xmpp/stanza"

	"github.com/mxpp/mxpp/roomloop"
	"github.com/mxpp/mxpp/xmpp"
)

// Roles and affiliations. The portal room shows the MUC's: an owner gets
// the admin level (100), an admin or a moderator the moderator level (50),
// a visitor of a moderated room -1 (below the level for sending), anyone
// else 0. The bot, above them all (matrix.BotLevel), sets them. A Matrix
// user who kicks or bans a puppet asks the room to do the same, as the
// user's occupant: the room decides, and a refusal is told.

// Power levels of MUC standings.
const (
	levelOwner     = 100
	levelModerator = 50
	levelVisitor   = -1
)

// levelOf is the power level of a MUC standing.
func levelOf(item xmpp.MUCItem) int {
	switch {
	case item.Affiliation == xmpp.AffOwner:
		return levelOwner
	case item.Affiliation == xmpp.AffAdmin, item.Role == xmpp.RoleModerator:
		return levelModerator
	case item.Role == xmpp.RoleVisitor:
		return levelVisitor
	}
	return 0
}

// setLevel gives a user of the portal room the level of its standing in
// the MUC, unless it has it.
func (p *Portal) setLevel(ctx context.Context, u id.UserID, item xmpp.MUCItem) {
	if item.Affiliation == "" && item.Role == "" {
		return // the presence did not say
	}
	level := levelOf(item)
	if p.info.PowerLevels.GetUserLevel(u) == level {
		return
	}
	if err := p.deps.Matrix.SetUserLevel(ctx, p.RoomID, p.deps.Matrix.BotID(), u, level); err != nil {
		p.log.Warn().Err(err).Stringer("user_id", u).Int("level", level).Msg("Failed to give a user the level of its standing in the MUC")
		return
	}
	p.info.PowerLevels.SetUserLevel(u, level)
}

// removedOnMatrix asks the room to kick or ban the occupant whose puppet a
// Matrix user kicked or banned on Matrix.
func (p *Portal) removedOnMatrix(ctx context.Context, puppet, actor id.UserID, content *event.MemberEventContent) {
	m, x := p.members[actor], p.others.byPuppet(puppet)
	if m == nil || x == nil || m.occ.State() != Joined {
		return
	}
	x.onMatrix = false
	delete(p.info.Members, puppet)
	item := xmpp.MUCItem{Nick: x.nick, Role: xmpp.RoleNone, Reason: content.Reason}
	what := "kick"
	if content.Membership == event.MembershipBan {
		item = xmpp.MUCItem{Nick: x.nick, Affiliation: xmpp.AffOutcast, Reason: content.Reason}
		what = "ban"
	}
	from := m.occ.From
	go func() {
		ctx, cancel := context.WithTimeout(p.Context(), 30*time.Second)
		defer cancel()
		_, err := p.deps.XMPP.SendIQ(ctx, &xmpp.IQ{Type: xmpp.TypeSet, From: xmpp.A(from), To: xmpp.A(p.room),
			Body: &xmpp.MUCAdmin{Items: []xmpp.MUCItem{item}}})
		p.Queue(p.Context(), removalDone{actor: actor, nick: x.nick, what: what, err: err})
	}()
}

// removalDone is the room's answer to a kick or ban a Matrix user asked
// for.
type removalDone struct {
	actor id.UserID
	nick  string
	what  string
	err   error
}

func (p *Portal) handleRemovalDone(ctx context.Context, d removalDone) {
	if d.err == nil {
		p.bridged(roomloop.ToXMPP, d.what)
		return
	}
	p.log.Info().Err(d.err).Stringer("actor", d.actor).Str("nick", d.nick).Msg("The MUC refused a kick or ban")
	text := "The " + d.what + " of " + d.nick + " did not reach " + p.room.String() + ": "
	var serr stanza.Error
	if errors.As(d.err, &serr) {
		text += "the room refused it (" + string(serr.Condition) + "; only its moderators may kick, only its admins ban)."
	} else {
		text += "the room did not answer."
	}
	p.notice(ctx, text, "")
	// Still in the MUC: its puppet comes back.
	if x := p.others.get(d.nick); x != nil && x.present {
		p.showOther(ctx, x)
	}
}
