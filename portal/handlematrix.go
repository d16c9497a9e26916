package portal

import (
	"context"
	"strings"
	"time"

	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
	"mellium.im/xmpp/jid"

	"github.com/mxpp/mxpp/database"
	"github.com/mxpp/mxpp/matrix"
	"github.com/mxpp/mxpp/msgconv"
	"github.com/mxpp/mxpp/roomloop"
	"github.com/mxpp/mxpp/xmpp"
)

// handleMatrixEvent handles a room event from the homeserver. It returns
// false when the portal is gone.
func (p *Portal) handleMatrixEvent(ctx context.Context, evt *event.Event) bool {
	log := roomloop.WithFields(p.log, "event_id", string(evt.ID), "sender", string(evt.Sender), "event_type", evt.Type.Type)
	return p.kind.onMatrixEvent(log.WithContext(ctx), evt)
}

// handleRoomMatrixEvent handles an event of a room's Matrix side. It
// returns false when the portal is gone.
func (p *Portal) handleRoomMatrixEvent(ctx context.Context, evt *event.Event) bool {
	switch evt.Type {
	case event.EventMessage:
		if !p.deps.Matrix.IsBridgeUser(evt.Sender) {
			p.handleMatrixMessage(ctx, evt)
		}
	case event.EventReaction:
		if !p.deps.Matrix.IsBridgeUser(evt.Sender) {
			p.handleMatrixReaction(ctx, evt)
		}
	case event.EventRedaction:
		p.handleMatrixRedaction(ctx, evt)
	case event.EphemeralEventTyping:
		p.handleMatrixTyping(ctx, evt)
	case event.EphemeralEventReceipt:
		p.handleMatrixReceipts(ctx, evt)
	case event.StateMember:
		return p.handleMatrixMember(ctx, evt)
	case event.StateRoomName, event.StateTopic:
		p.handleMatrixSubject(ctx, evt)
	case event.StateCanonicalAlias:
		return p.handleMatrixReachability(ctx, evt)
	case event.StateJoinRules:
		// Open or members-only; either way the room stays reachable.
		p.info.JoinRule = evt.Content.AsJoinRules().JoinRule
	case event.StatePowerLevels:
		p.handlePowerLevels(ctx, evt)
	case event.StateRoomAvatar:
		p.info.Avatar = evt.Content.AsRoomAvatar().URL
	case event.StateHistoryVisibility:
		p.info.HistoryVisibility = evt.Content.AsHistoryVisibility().HistoryVisibility
	}
	return true
}

func (p *Portal) handleMatrixMessage(ctx context.Context, evt *event.Event) {
	content := evt.Content.AsMessage()
	if content.MsgType == "" && content.Body == "" {
		return
	}
	m := p.roster.members[evt.Sender]
	if m == nil {
		// The member event has not reached us yet; show the user by its
		// localpart until it does.
		p.announce(ctx, p.roster.set(evt.Sender, ""))
		m = p.roster.members[evt.Sender]
	}
	if len(p.occupants) == 0 || p.alreadyBridged(ctx, evt) {
		return
	}
	rel := &msgconv.Relation{}
	render, _ := p.xmppRelations(ctx, evt.Sender, content, rel)
	body, refs := p.xmppBody(ctx, render)
	link, oob, files, caption := p.conv.MediaPayloads(ctx, render)
	delay := p.late.Stamp(ctx, evt, p.roomJID.String())
	for _, to := range p.sessions() {
		out := &xmpp.Message{
			ID: evt.ID.String(), Type: xmpp.TypeGroupchat, From: xmpp.A(p.occupantJID(m.nick)), To: xmpp.A(to), Body: body,
			References: refs,
			StanzaID:   &xmpp.StanzaID{ID: evt.ID.String(), By: p.roomJID.String()},
			OccupantID: p.occupantID(evt.Sender),
			Delay:      delay,
		}
		if link != "" {
			// The link alone as the body: clients show such a message inline.
			out.Body, out.References, out.OOB, out.FileSharing = link, nil, oob, files
		}
		rel.Apply(out)
		p.send(ctx, out)
		if caption != "" {
			p.send(ctx, &xmpp.Message{ID: evt.ID.String() + "-caption", Type: xmpp.TypeGroupchat, From: out.From, To: out.To,
				Body: caption, OccupantID: out.OccupantID, Delay: delay})
		}
	}
	p.markBridged(ctx, evt, rel, content)
}

// alreadyBridged reports whether a Matrix message is in the message map:
// the homeserver sent it again.
func (p *Portal) alreadyBridged(ctx context.Context, evt *event.Event) bool {
	prev, err := p.deps.DB.Message.GetByEventID(ctx, p.RoomID, evt.ID)
	if err != nil {
		p.log.Error().Err(err).Stringer("event_id", evt.ID).Msg("Failed to look up message")
		return false
	}
	if prev != nil {
		p.log.Debug().Stringer("event_id", evt.ID).Msg("Ignoring Matrix message that was already bridged")
	}
	return prev != nil
}

// markBridged stores the mapping of a Matrix message that reached XMPP,
// whose id there is the event ID. One that did not is not marked, so that
// the homeserver's retry delivers it.
func (p *Portal) markBridged(ctx context.Context, evt *event.Event, rel *msgconv.Relation, content *event.MessageEventContent) {
	log := roomloop.WithFields(p.log, "event_id", string(evt.ID))
	if !p.Delivered() {
		log.Warn().Msg("Matrix message did not reach XMPP; the homeserver will retry it")
		return
	}
	err := p.deps.DB.Message.Insert(ctx, &database.Message{RoomID: p.RoomID, EventID: evt.ID,
		SenderJID: p.contactJID(evt.Sender).String(), StanzaID: evt.ID.String(), TargetEventID: rel.Target, Timestamp: time.Now()})
	if err != nil {
		log.Error().Err(err).Msg("Failed to store message mapping")
	}
	log.Debug().Bool("direct", p.IsDirect()).Msg("Bridged Matrix message to XMPP")
	p.bridged(ToXMPP, msgconv.MessageKind(content))
}

// handleMatrixMember follows joins, leaves and display names of Matrix
// members, and kicks and bans of puppets.
func (p *Portal) handleMatrixMember(ctx context.Context, evt *event.Event) bool {
	if evt.StateKey == nil {
		return true
	}
	target := id.UserID(*evt.StateKey)
	content := evt.Content.AsMember()
	oldAvatar, wasMember := p.info.Members[target]
	p.trackMembership(target, content)
	switch {
	case target == p.deps.Matrix.BotID():
		if content.Membership != event.MembershipJoin {
			p.log.Info().Str("membership", string(content.Membership)).Msg("Bridge bot left the room, closing portal")
			p.destroy(ctx, jid.JID{}, "The room is no longer bridged")
			return false
		}
	case p.deps.Matrix.IsBridgeUser(target):
		switch {
		case evt.Sender == target:
		case content.Membership == event.MembershipLeave, content.Membership == event.MembershipBan:
			p.removedOnMatrix(ctx, target, evt.Sender, content)
		case content.Membership == event.MembershipInvite && !p.deps.Matrix.IsBridgeUser(evt.Sender):
			p.invitedOnMatrix(ctx, target, evt.Sender, content.Reason)
		}
	default:
		changes := p.handleMemberChange(ctx, target, evt.Sender, content)
		if m := p.roster.members[target]; m != nil && wasMember && len(changes) == 0 && oldAvatar.AvatarURL != content.AvatarURL {
			// Only the avatar changed: the new hash goes out with presence.
			p.broadcast(ctx, nil, func(to jid.JID) any { return p.availablePresence(m.userID, m.nick, to, p.memberItem(m)) })
		}
	}
	return true
}

// handleMemberChange follows a Matrix member's joins, renames and leaves,
// and returns the nick changes it announced.
func (p *Portal) handleMemberChange(ctx context.Context, target, sender id.UserID, content *event.MemberEventContent) []nickChange {
	switch content.Membership {
	case event.MembershipJoin:
		changes := p.roster.set(target, content.Displayname)
		p.announce(ctx, changes)
		return changes
	case event.MembershipLeave, event.MembershipBan:
		m, changes := p.roster.remove(target)
		if m == nil {
			return nil
		}
		var status []int
		item := p.memberItem(m)
		if sender != target {
			status = []int{kickStatus(content.Membership)}
			item.Actor = p.actor(sender)
			item.Reason = content.Reason
		}
		if content.Membership == event.MembershipBan {
			item.Affiliation = xmpp.AffOutcast
		}
		p.broadcast(ctx, nil, func(to jid.JID) any { return p.unavailablePresence(m.userID, m.nick, to, item, status...) })
		p.announce(ctx, changes)
		return changes
	}
	return nil
}

// announce tells every session about members that arrived or whose nick
// changed: a nick change is unavailable presence under the old nick with
// the new one and status 303, then presence under the new nick (XEP-0045
// §7.6).
func (p *Portal) announce(ctx context.Context, changes []nickChange) {
	for _, c := range changes {
		m, old := c.m, c.old
		if old != "" {
			p.broadcast(ctx, nil, func(to jid.JID) any {
				item := p.memberItem(m)
				item.Nick = m.nick
				return p.unavailablePresence(m.userID, old, to, item, xmpp.StatusNewNick)
			})
			if p.deps.PrivateMoved != nil {
				p.deps.PrivateMoved(ctx, m.userID, p.occupantJID(old), p.occupantJID(m.nick))
			}
		}
		p.broadcast(ctx, nil, func(to jid.JID) any { return p.availablePresence(m.userID, m.nick, to, p.memberItem(m)) })
	}
}

func kickStatus(m event.Membership) int {
	if m == event.MembershipBan {
		return xmpp.StatusBanned
	}
	return xmpp.StatusKicked
}

// removedOnMatrix handles a puppet kicked or banned on Matrix: its XMPP user
// is removed from the MUC with status 307 or 301 (XEP-0045 §9.1, §9.2).
func (p *Portal) removedOnMatrix(ctx context.Context, puppet, actor id.UserID, content *event.MemberEventContent) {
	var occ *occupant
	for _, o := range p.occupants {
		if o.puppet == puppet {
			occ = o
		}
	}
	if occ == nil {
		return
	}
	p.log.Info().Stringer("jid", occ.bare).Stringer("actor", actor).Str("membership", string(content.Membership)).
		Msg("XMPP user removed on Matrix")
	item := p.occupantItem(occ, jid.JID{})
	item.Actor = p.actor(actor)
	item.Reason = content.Reason
	if content.Membership == event.MembershipBan {
		item.Affiliation = xmpp.AffOutcast
	}
	code := kickStatus(content.Membership)
	sessions := occ.jids()
	p.dropOccupant(ctx, occ)
	for _, s := range sessions {
		p.send(ctx, p.unavailablePresence(occ.puppet, occ.nick, s, item, code, xmpp.StatusSelf))
	}
	p.broadcast(ctx, nil, func(to jid.JID) any { return p.unavailablePresence(occ.puppet, occ.nick, to, item, code) })
}

func (p *Portal) handleMatrixSubject(ctx context.Context, evt *event.Event) {
	before, _ := p.subject()
	switch evt.Type {
	case event.StateRoomName:
		p.info.Name, p.info.NameSetter = evt.Content.AsRoomName().Name, evt.Sender
	case event.StateTopic:
		p.info.Topic, p.info.TopicSetter = evt.Content.AsTopic().Topic, evt.Sender
	}
	if now, _ := p.subject(); now == before {
		return
	}
	for _, to := range p.sessions() {
		p.send(ctx, p.subjectMessage(to))
	}
}

// handleMatrixReachability follows the canonical alias. A room that loses it
// is destroyed; a new alias moves the MUC, and occupants are told where to
// (XEP-0045 §10.9), while the portal goes on at the new address. It
// returns false when the portal is gone.
func (p *Portal) handleMatrixReachability(ctx context.Context, evt *event.Event) bool {
	ca := evt.Content.AsCanonicalAlias()
	p.info.CanonicalAlias, p.info.AltAliases = ca.Alias, ca.AltAliases
	alias := p.info.CanonicalAlias
	if Reachable(p.info, p.deps.Scheme, p.deps.HomeserverDomain) != nil {
		p.log.Info().Msg("Room is no longer reachable from XMPP, closing portal")
		p.destroy(ctx, jid.JID{}, "The room is no longer open to XMPP")
		return false
	}
	if strings.EqualFold(alias.String(), p.Alias.String()) {
		if alias != p.Alias { // only the case changed
			p.Alias = alias
			if err := p.deps.DB.Portal.Update(ctx, p.Portal); err != nil {
				p.log.Error().Err(err).Msg("Failed to store new alias")
			}
		}
		return true
	}
	newJID, _ := MUCJID(p.deps.Scheme, alias)
	p.log.Info().Stringer("alias", alias).Stringer("new_muc", newJID).Msg("Room alias changed, moving MUC")
	p.destroyKeep(ctx, newJID, "The room has a new address")
	oldLocal := p.MUCLocal
	p.Alias, p.MUCLocal = alias, newJID.Localpart()
	p.setRoomJID(newJID)
	if err := p.deps.DB.Portal.Update(ctx, p.Portal); err != nil {
		p.log.Error().Err(err).Msg("Failed to store new alias")
	}
	// The portal goes on at its new address: what is queued behind this
	// event is handled there, and the occupants told of the move join it.
	if p.deps.OnMoved != nil {
		p.deps.OnMoved(p, oldLocal)
	}
	return true
}

// destroy closes the MUC for good and deletes the portal.
func (p *Portal) destroy(ctx context.Context, venue jid.JID, reason string) {
	p.destroyKeep(ctx, venue, reason)
	if err := p.deps.DB.Portal.Delete(ctx, p.RoomID); err != nil {
		p.log.Error().Err(err).Msg("Failed to delete portal")
	}
	if p.deps.OnGone != nil {
		p.deps.OnGone(p)
	}
}

// destroyKeep removes every occupant with a destroy notice (pointing to
// venue if set) and lets their puppets leave Matrix, keeping the portal row.
func (p *Portal) destroyKeep(ctx context.Context, venue jid.JID, reason string) {
	for _, o := range p.occupants {
		for _, s := range o.jids() {
			pres := p.unavailablePresence(o.puppet, o.nick, s, xmpp.MUCItem{Affiliation: xmpp.AffNone, Role: xmpp.RoleNone}, xmpp.StatusSelf)
			pres.MUCUser.Destroy = &xmpp.MUCDestroy{JID: xmpp.A(venue), Reason: reason}
			p.send(ctx, pres)
		}
		p.dropOccupant(ctx, o)
		if err := p.deps.Matrix.LeavePuppet(ctx, p.RoomID, o.puppet, reason); err != nil {
			p.log.Error().Err(err).Stringer("puppet", o.puppet).Msg("Puppet failed to leave the Matrix room")
		}
	}
}

// trackMembership keeps the room's member, invite and ban lists current.
func (p *Portal) trackMembership(target id.UserID, content *event.MemberEventContent) {
	delete(p.info.Members, target)
	delete(p.info.Invited, target)
	delete(p.info.Banned, target)
	switch content.Membership {
	case event.MembershipJoin:
		p.info.Members[target] = matrix.Member{Displayname: content.Displayname, AvatarURL: content.AvatarURL}
	case event.MembershipInvite:
		p.info.Invite(target)
	case event.MembershipBan:
		p.info.Ban(target)
	}
}
