package remotemuc

import (
	"context"
	"time"

	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/mxpp/mxpp/database"
	"github.com/mxpp/mxpp/matrix"
	"github.com/mxpp/mxpp/msgconv"
	"github.com/mxpp/mxpp/roomloop"
	"github.com/mxpp/mxpp/xmpp"
	"github.com/rs/zerolog"
)

// handleMatrixEvent handles an event of the portal room. It returns false
// when the portal is gone.
func (p *Portal) handleMatrixEvent(ctx context.Context, evt *event.Event) bool {
	log := roomloop.WithFields(p.log, "event_id", string(evt.ID), "sender", string(evt.Sender), "event_type", evt.Type.Type)
	ctx = log.WithContext(ctx)
	if p.waitForReflection(ctx, evt) {
		return true
	}
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
		if !p.deps.Matrix.IsBridgeUser(evt.Sender) {
			p.handleMatrixRedaction(ctx, evt)
		}
	case event.EphemeralEventTyping:
		p.handleMatrixTyping(ctx, evt)
	case event.EphemeralEventReceipt:
		p.handleMatrixReceipts(ctx, evt)
	case event.StateMember:
		return p.handleMatrixMember(ctx, evt)
	case event.StateTopic:
		p.info.Topic = evt.Content.AsTopic().Topic
	case event.StatePowerLevels:
		p.info.PowerLevels = evt.Content.AsPowerLevels()
	}
	return true
}

// reflectionWait bounds how long a Matrix event that refers to a message
// of ours waits for the room to reflect that message.
const reflectionWait = 5 * time.Second

// waitForReflection makes a Matrix event that refers to a message of ours
// which the room has not reflected yet wait for that, with the events
// behind it (roomloop.WaitBefore): a reply, reaction or retraction names
// its target by the room's stanza-id, which only the reflection tells. A
// user who answers their own message at once would otherwise reach the
// room with a quote and no reference. It reports whether the event waits.
func (p *Portal) waitForReflection(ctx context.Context, evt *event.Event) bool {
	target := relationTarget(evt)
	if target == "" || !p.muc.StanzaIDs || p.deps.Matrix.IsBridgeUser(evt.Sender) || !p.unreflected(target) {
		return false
	}
	if !p.WaitBefore(reflectionWait) {
		return false
	}
	p.awaited = target
	zerolog.Ctx(ctx).Debug().Stringer("target", target).Msg("Waiting for the room to reflect the message this event refers to")
	return true
}

// relationTarget is the message a reply, reaction or redaction refers to.
// An edit names its message by our own id, which needs no reflection.
func relationTarget(evt *event.Event) id.EventID {
	switch evt.Type {
	case event.EventMessage:
		c := evt.Content.AsMessage()
		if orig, _ := msgconv.EditOf(c); orig != "" {
			return ""
		}
		return c.RelatesTo.GetReplyTo()
	case event.EventReaction:
		return evt.Content.AsReaction().RelatesTo.EventID
	case event.EventRedaction:
		if target := evt.Content.AsRedaction().Redacts; target != "" {
			return target
		}
		return evt.Redacts
	}
	return ""
}

// unreflected reports whether a message of ours waits for its reflection.
func (p *Portal) unreflected(evtID id.EventID) bool {
	for _, m := range p.members {
		if m.sent.has(evtID.String()) {
			return true
		}
	}
	return false
}

// reflected lets the event waiting for a message's reflection go on.
func (p *Portal) reflected(evtID id.EventID) {
	if evtID != "" && evtID == p.awaited {
		p.awaited = ""
		p.Resume()
	}
}

// handleMatrixMember follows the Matrix users of the room: each that joins
// becomes an occupant of the MUC, and leaves it with the Matrix room.
func (p *Portal) handleMatrixMember(ctx context.Context, evt *event.Event) bool {
	if evt.StateKey == nil {
		return true
	}
	target := id.UserID(*evt.StateKey)
	content := evt.Content.AsMember()
	p.trackMembership(target, content)
	switch {
	case target == p.deps.Matrix.BotID():
		if content.Membership == event.MembershipLeave || content.Membership == event.MembershipBan {
			p.log.Info().Str("membership", string(content.Membership)).Msg("Bridge bot left the portal room; closing the portal")
			p.close(ctx, "The room is no longer bridged")
			return false
		}
	case p.deps.Matrix.IsBridgeUser(target):
		// Puppets: the bridge moves them itself, but a Matrix user may
		// kick or ban one.
		if (content.Membership == event.MembershipLeave || content.Membership == event.MembershipBan) &&
			evt.Sender != target && !p.deps.Matrix.IsBridgeUser(evt.Sender) {
			p.removedOnMatrix(ctx, target, evt.Sender, content)
		}
	case content.Membership == event.MembershipJoin:
		p.memberJoined(ctx, target, content.Displayname)
	case content.Membership == event.MembershipLeave, content.Membership == event.MembershipBan:
		if m := p.members[target]; m != nil {
			p.apply(ctx, m, m.occ.Leave())
			delete(p.members, target)
			if err := p.deps.DB.RemoteOccupant.Delete(ctx, p.RoomID, target); err != nil {
				p.log.Error().Err(err).Stringer("user_id", target).Msg("Failed to delete an occupant")
			}
			p.log.Info().Stringer("user_id", target).Msg("Matrix user left the portal room and the MUC")
			if len(p.members) == 0 {
				// Nobody of ours is in the MUC to see its occupants come and
				// go: their puppets leave until someone joins again.
				for _, x := range p.others.byNick {
					p.others.remove(x)
					p.removeOther(ctx, x, &xmpp.Presence{}, xmpp.MUCItem{})
				}
			}
		}
	}
	return true
}

// memberJoined makes a Matrix user who joined the room (or changed its
// name there) an occupant of the MUC. A user the room refused or removed
// is tried again: joining again, or a new name, is how the user asks.
func (p *Portal) memberJoined(ctx context.Context, user id.UserID, displayname string) {
	m := p.members[user]
	switch {
	case m == nil:
		m = p.addMember(user, displayname)
	case m.displayname == displayname && m.occ.State() != Out:
		return // a profile change that is not the name
	default:
		m.displayname = displayname
		local, _, _ := user.Parse()
		candidates := xmpp.NickCandidates(displayname, local)
		if m.occ.State() != Out {
			// A new name while in: the new nick, if the room agrees.
			p.apply(ctx, m, m.occ.Rename(candidates))
			return
		}
		m.occ.SetCandidates(candidates)
	}
	if !p.permitted(user) {
		p.notice(ctx, p.mention(m)+"you may not use the bridge, so you are not in "+p.room.String()+" and your messages are not sent there.", "")
		return
	}
	m.active = true
	out := m.occ.Join(p.stored.Password)
	p.storeMember(ctx, m)
	p.apply(ctx, m, out)
}

// trackMembership keeps the room's member list current.
func (p *Portal) trackMembership(target id.UserID, content *event.MemberEventContent) {
	delete(p.info.Members, target)
	if content.Membership == event.MembershipJoin {
		p.info.Members[target] = matrix.Member{Displayname: content.Displayname, AvatarURL: content.AvatarURL}
	}
}

// handleMatrixMessage sends a Matrix user's message to the MUC from the
// user's occupant, which holds it while it is joining. Its id and origin-id
// are the event ID: the room reflects it, and tells its own stanza-id for
// it then.
func (p *Portal) handleMatrixMessage(ctx context.Context, evt *event.Event) {
	content := evt.Content.AsMessage()
	if content.MsgType == "" && content.Body == "" {
		return
	}
	m := p.members[evt.Sender]
	if m == nil {
		return
	}
	if row, err := p.deps.DB.Message.GetByEventID(ctx, p.RoomID, evt.ID); err == nil && row != nil {
		return // the homeserver sent it again
	}
	if p.took.has(evt.ID.String()) {
		// The room has it already: sent before a restart that came
		// before its mapping was stored.
		p.log.Info().Stringer("event_id", evt.ID).Msg("The room's history shows it took this message before a restart; not sending it again")
		p.mapSent(ctx, m, evt.ID, "")
		return
	}
	rel := &msgconv.Relation{}
	render := p.relations(ctx, m, content, rel)
	body, refs := p.deps.Conv.XMPPBody(ctx, names{p}, render)
	link, oob, files, caption := p.deps.Conv.MediaPayloads(ctx, render)
	out := &xmpp.Message{ID: evt.ID.String(), Body: body, References: refs, OriginID: &xmpp.OriginID{ID: evt.ID.String()},
		Delay: p.late.Stamp(ctx, evt, m.occ.From.Bare().String())}
	if link != "" {
		out.Body, out.References, out.OOB, out.FileSharing = link, nil, oob, files
	}
	rel.Apply(out)
	m.sent.note(out, evt.Timestamp)
	outcome := p.occSend(ctx, m, out, evt.Timestamp)
	if caption != "" && outcome.Notice == "" {
		// Behind the file, also when both wait.
		c := p.occSend(ctx, m, &xmpp.Message{ID: evt.ID.String() + "-caption", Body: caption}, evt.Timestamp)
		outcome.Send = append(outcome.Send, c.Send...)
	}
	if !p.send(ctx, outcome.Send...) {
		m.sent.take(out.ID)
		p.log.Warn().Msg("Matrix message did not reach XMPP; the homeserver will retry it")
		return
	}
	m.sent.wentOut(outcome.Send, p.deps.XMPP.Link())
	if outcome.Notice != "" {
		m.sent.take(out.ID)
		p.notice(ctx, p.mention(m)+outcome.Notice, evt.ID)
		return
	}
	p.mapSent(ctx, m, evt.ID, rel.Target)
	p.bridged(roomloop.ToXMPP, msgconv.MessageKind(content))
}

// mapSent stores the mapping of a member's message sent to the room: its
// id there is the event ID.
func (p *Portal) mapSent(ctx context.Context, m *member, evtID, target id.EventID) {
	err := p.deps.DB.Message.Insert(ctx, &database.Message{RoomID: p.RoomID, EventID: evtID, SenderJID: m.occ.From.Bare().String(),
		StanzaID: evtID.String(), TargetEventID: target, Timestamp: time.Now()})
	if err != nil {
		p.log.Error().Err(err).Msg("Failed to store message mapping")
	}
}

// relations fills rel with what a Matrix message's relation means in the
// MUC and returns the content to render: an edit of the user's own message
// becomes a correction of the id it went out with (XEP-0308); a reply
// names its target as the room's occupants do (refOf); where the bridge
// does not know that name, only the quote goes.
func (p *Portal) relations(ctx context.Context, m *member, content *event.MessageEventContent, rel *msgconv.Relation) *event.MessageEventContent {
	if orig, newContent := msgconv.EditOf(content); orig != "" {
		row, err := p.deps.DB.Message.GetByEventID(ctx, p.RoomID, orig)
		if err != nil || row == nil || row.SenderJID != m.occ.From.Bare().String() {
			rel.Prefix = "* "
			return newContent
		}
		rel.Replace, rel.Target = &xmpp.Replace{ID: row.StanzaID}, orig
		return newContent
	}
	target := content.RelatesTo.GetReplyTo()
	if target == "" {
		return content
	}
	nick := ""
	quoted, err := p.deps.Matrix.GetEvent(ctx, p.RoomID, target)
	if err == nil {
		nick = names{p}.NickOf(quoted.Sender)
	}
	rel.Prefix = p.deps.Conv.ReplyQuote(ctx, names{p}, nick, quoted)
	if row, err := p.deps.DB.Message.GetByEventID(ctx, p.RoomID, target); err == nil && row != nil && p.refOf(row) != "" {
		rel.Reply = &xmpp.Reply{ID: p.refOf(row), To: xmpp.A(p.room)}
		if occ, err := p.room.WithResource(nick); err == nil && nick != "" {
			rel.Reply.To = xmpp.A(occ)
		}
	}
	return content
}

// close ends the portal: every occupant leaves the MUC, the puppets leave
// the Matrix room, and the row goes with its mappings.
func (p *Portal) close(ctx context.Context, reason string) {
	for _, m := range p.members {
		p.send(ctx, m.occ.Leave().Send...)
	}
	for _, x := range p.others.byNick {
		if x.onMatrix {
			if err := p.deps.Matrix.LeavePuppet(ctx, p.RoomID, x.puppet, reason); err != nil {
				p.log.Warn().Err(err).Stringer("puppet", x.puppet).Msg("Puppet failed to leave the portal room")
			}
		}
	}
	if err := p.deps.DB.Portal.Delete(ctx, p.RoomID); err != nil {
		p.log.Error().Err(err).Msg("Failed to delete the portal")
	}
	if p.deps.OnGone != nil {
		p.deps.OnGone(p)
	}
}
