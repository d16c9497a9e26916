package portal

import (
	"context"
	"errors"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"github.com/mxpp/mxpp/database"
	"github.com/mxpp/mxpp/roomloop"
	"github.com/mxpp/mxpp/xmpp"
)

// matrixError turns the error of a Matrix call made for an XMPP user into
// the stanza error to answer with: the homeserver's refusal is the user's
// lack of power, anything else the homeserver's failure.
func matrixError(err error, forbidden string) *stanza.Error {
	switch {
	case errors.Is(err, mautrix.MForbidden):
		return xmpp.StanzaError(stanza.Forbidden, forbidden)
	case errors.Is(err, mautrix.MNotFound):
		return xmpp.StanzaError(stanza.ItemNotFound, "")
	case errors.Is(err, mautrix.MTooLarge):
		return xmpp.StanzaError(stanza.NotAcceptable, "Too large for Matrix")
	}
	return xmpp.StanzaError(stanza.RemoteServerTimeout, "The Matrix homeserver did not carry out the request")
}

// changeNick handles an occupant's nick change (XEP-0045 §7.6): the puppet's
// display name in the room changes on Matrix, and every session sees the
// old nick leave with status 303 and the new one arrive.
func (p *Portal) changeNick(ctx context.Context, occ *occupant, from jid.JID, pres *xmpp.Presence) {
	newNick := pres.To.Resourcepart()
	fail := func(serr *stanza.Error) {
		p.refuse(ctx, pres, serr)
	}
	if owner, taken := p.roster.owns(newNick); taken && owner != occ.puppet {
		fail(xmpp.StanzaError(stanza.Conflict, "This nickname is already in use in the room"))
		return
	}
	if !p.allowChurn(occ.bare.String()) {
		fail(xmpp.StanzaError(stanza.ResourceConstraint, "You changed your nickname too often; try again in a minute"))
		return
	}
	if err := p.deps.Matrix.SetPuppetRoomName(ctx, p.RoomID, occ.puppet, newNick); err != nil {
		p.log.Warn().Err(err).Stringer("jid", from).Msg("Failed to change the puppet's display name")
		fail(matrixError(err, "You may not change your name in this room"))
		return
	}
	oldNick := occ.nick
	p.roster.release(oldNick, occ.puppet)
	p.roster.claim(newNick, occ.puppet)
	occ.nick = newNick
	for _, s := range occ.jids() {
		err := p.deps.DB.Occupant.Upsert(ctx, &database.Occupant{RoomID: p.RoomID, FullJID: s.String(), UserJID: occ.bare.String(), Nick: newNick})
		if err != nil {
			p.log.Error().Err(err).Msg("Failed to store the new nick")
		}
	}
	p.log.Info().Stringer("jid", from).Str("old_nick", oldNick).Str("nick", newNick).Msg("XMPP user changed nick")
	for _, other := range p.occupants {
		for _, s := range other.jids() {
			self := []int{}
			if other == occ {
				self = []int{xmpp.StatusSelf}
			}
			item := p.occupantItem(occ, jid.JID{})
			item.Nick = newNick
			p.send(ctx, p.unavailablePresence(occ.puppet, oldNick, s, item, append([]int{xmpp.StatusNewNick}, self...)...))
			p.send(ctx, p.availablePresence(occ.puppet, newNick, s, p.occupantItem(occ, jid.JID{}), self...))
		}
	}
}

// setSubject changes the Matrix topic for an occupant (XEP-0045 §8.1). The
// topic event, when it comes back, updates every session's subject.
func (p *Portal) setSubject(ctx context.Context, occ *occupant, msg *xmpp.Message) {
	if err := p.deps.Matrix.SetTopic(ctx, p.RoomID, occ.puppet, *msg.Subject); err != nil {
		p.log.Info().Err(err).Stringer("jid", occ.bare).Msg("Subject change refused")
		p.refuse(ctx, msg, matrixError(err, "You may not change the subject of this room"))
	}
}

// handleAdmin carries out muc#admin requests (XEP-0045 §8 and §9) on
// Matrix as the requesting occupant's puppet, so the room's power levels
// decide what is allowed.
func (p *Portal) handleAdmin(ctx context.Context, iq *xmpp.IQ) {
	var q xmpp.MUCAdmin
	if err := iq.Payload.Decode(&q); err != nil || len(q.Items) == 0 {
		p.deps.XMPP.Reply(ctx, iq, nil, xmpp.StanzaError(stanza.BadRequest, "Malformed muc#admin request"))
		return
	}
	occ, ok := p.session(iq.From.JID)
	if !ok {
		p.deps.XMPP.Reply(ctx, iq, nil, xmpp.StanzaError(stanza.Forbidden, "You are not in this room"))
		return
	}
	if iq.Type == xmpp.TypeGet {
		// Lists name real JIDs: affiliation lists are for admins and
		// owners (XEP-0045 §9.5, §10.5), role lists for moderators (§8.5).
		st := p.standingOf(occ.puppet)
		if q.Items[0].Role != "" && st.role != xmpp.RoleModerator ||
			q.Items[0].Role == "" && st.affiliation != xmpp.AffOwner && st.affiliation != xmpp.AffAdmin {
			p.deps.XMPP.Reply(ctx, iq, nil, xmpp.StanzaError(stanza.Forbidden, "Only the room's moderators may read this list"))
			return
		}
		p.deps.XMPP.Reply(ctx, iq, p.adminList(q.Items[0]), nil)
		return
	}
	for _, item := range q.Items {
		if serr := p.applyAdminItem(ctx, occ, item); serr != nil {
			p.deps.XMPP.Reply(ctx, iq, nil, serr)
			return
		}
	}
	p.deps.XMPP.Reply(ctx, iq, nil, nil)
}

func (p *Portal) applyAdminItem(ctx context.Context, occ *occupant, item xmpp.MUCItem) *stanza.Error {
	target, ok := p.adminTarget(item)
	if !ok {
		return xmpp.StanzaError(stanza.ItemNotFound, "No such occupant or user")
	}
	actor := occ.puppet
	log := roomloop.WithFields(p.log, "actor", string(actor), "target", target.String(), "role", item.Role,
		"affiliation", item.Affiliation)
	pl := p.powerLevels()
	var err error
	switch {
	case item.Role == xmpp.RoleNone:
		err = p.deps.Matrix.Kick(ctx, p.RoomID, actor, target, item.Reason)
	case item.Affiliation == xmpp.AffOutcast:
		err = p.deps.Matrix.Ban(ctx, p.RoomID, actor, target, item.Reason)
	case item.Role == xmpp.RoleParticipant, item.Role == xmpp.RoleModerator:
		level := speakLevel(pl)
		if item.Role == xmpp.RoleModerator {
			level = moderatorLevel(pl)
		}
		if pl.GetUserLevel(target) < level {
			err = p.deps.Matrix.SetUserLevel(ctx, p.RoomID, actor, target, level)
		}
	case item.Role == xmpp.RoleVisitor:
		if pl.GetUserLevel(target) >= speakLevel(pl) {
			err = p.deps.Matrix.SetUserLevel(ctx, p.RoomID, actor, target, speakLevel(pl)-1)
		}
	case item.Affiliation == xmpp.AffOwner, item.Affiliation == xmpp.AffAdmin:
		level := adminLevel(pl)
		if item.Affiliation == xmpp.AffAdmin {
			level = moderatorLevel(pl)
		}
		err = p.deps.Matrix.SetUserLevel(ctx, p.RoomID, actor, target, level)
	case item.Affiliation == xmpp.AffMember, item.Affiliation == xmpp.AffNone:
		if p.info.Banned[target] {
			err = p.deps.Matrix.Unban(ctx, p.RoomID, actor, target, item.Reason)
		} else if pl.GetUserLevel(target) != pl.UsersDefault {
			err = p.deps.Matrix.SetUserLevel(ctx, p.RoomID, actor, target, pl.UsersDefault)
		}
	default:
		return xmpp.StanzaError(stanza.BadRequest, "The item changes neither a role nor an affiliation")
	}
	if err != nil {
		log.Info().Err(err).Msg("Moderation request failed on Matrix")
		return matrixError(err, "Your power level in the Matrix room does not allow this")
	}
	log.Info().Msg("Moderation request carried out on Matrix")
	return nil
}

// adminTarget finds the Matrix user an admin item is about: by nick, or by
// JID (a Matrix user's contact JID, or an XMPP user's address).
func (p *Portal) adminTarget(item xmpp.MUCItem) (id.UserID, bool) {
	if item.Nick != "" {
		return p.userOfNick(item.Nick)
	}
	if item.JID.IsZero() {
		return "", false
	}
	return p.userOfJID(item.JID.JID)
}

// userOfJID maps an address to its Matrix user: a contact JID on the
// component to the Matrix user, any other JID to its puppet.
func (p *Portal) userOfJID(j jid.JID) (id.UserID, bool) {
	if local, server, err := p.deps.Scheme.ParseUserJID(j); err == nil {
		return id.NewUserID(local, server), true
	}
	if j.Domainpart() == p.deps.Scheme.Domain.Domainpart() {
		return "", false
	}
	return p.deps.Matrix.PuppetID(j.Bare().String()), true
}

// adminList answers a muc#admin get for an affiliation or role list.
func (p *Portal) adminList(filter xmpp.MUCItem) *xmpp.MUCAdmin {
	out := &xmpp.MUCAdmin{}
	add := func(u id.UserID, st standing) {
		item := xmpp.MUCItem{Affiliation: st.affiliation, Role: st.role, JID: xmpp.A(p.jidOfUser(u)), Nick: p.nickOf(u)}
		if filter.Affiliation == "" {
			item.Affiliation = ""
		} else {
			item.Role = ""
		}
		out.Items = append(out.Items, item)
	}
	if filter.Affiliation == xmpp.AffOutcast {
		for u := range p.info.Banned {
			add(u, standing{affiliation: xmpp.AffOutcast})
		}
		return out
	}
	users := map[id.UserID]bool{}
	for u := range p.roster.members {
		users[u] = true
	}
	for _, o := range p.occupants {
		users[o.puppet] = true
	}
	for u := range p.powerLevels().Users {
		users[u] = true
	}
	for u := range users {
		if u == p.deps.Matrix.BotID() {
			continue
		}
		st := p.standingOf(u)
		if (filter.Affiliation != "" && st.affiliation == filter.Affiliation) ||
			(filter.Role != "" && st.role == filter.Role && p.nickOf(u) != "") {
			add(u, st)
		}
	}
	return out
}

// jidOfUser is the address XMPP knows a Matrix user by: an XMPP user's own
// bare JID for a puppet, else the contact JID on the component.
func (p *Portal) jidOfUser(u id.UserID) jid.JID {
	if o := p.occupantOf(u); o != nil {
		return o.bare
	}
	if remote, ok := p.deps.Matrix.ParsePuppetID(u); ok {
		if j, err := xmpp.ParseJID(remote); err == nil {
			return j
		}
	}
	return p.contactJID(u)
}
