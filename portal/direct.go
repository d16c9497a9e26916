package portal

import (
	"context"
	"fmt"

	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"github.com/mxpp/mxpp/database"
	"github.com/mxpp/mxpp/msgconv"
	"github.com/mxpp/mxpp/xmpp"
)

// A direct chat is a portal between one Matrix user and one XMPP user: a
// Matrix room marked is_direct, where the XMPP user's puppet and the bot are
// the other members, and one-to-one chat messages on XMPP, between the XMPP
// user and the Matrix user's contact JID. It runs the same loop and keeps
// the same message map as a room; the XMPP user stands in it as an occupant
// without sessions, so nothing meant for MUC occupants goes out.
type direct struct {
	user    id.UserID // the Matrix user
	userJID jid.JID   // the Matrix user's contact JID on the component
	remote  *occupant // the XMPP user
}

// chat addresses a message of the Matrix user to the XMPP user, as a
// one-to-one chat message.
func (d *direct) chat(m *xmpp.Message) *xmpp.Message {
	m.Type, m.From, m.To = xmpp.TypeChat, xmpp.A(d.userJID), xmpp.A(d.remote.bare)
	return m
}

// NewDirect returns the portal of a direct chat row; Start runs it.
func NewDirect(row *database.Portal, deps Deps) (*Portal, error) {
	if !row.IsDirect() {
		return nil, fmt.Errorf("portal %s is not a direct chat", row.RoomID)
	}
	bare, err := xmpp.ParseJID(row.DMJID)
	if err != nil || bare.Resourcepart() != "" {
		return nil, fmt.Errorf("direct chat %s: invalid JID %q", row.RoomID, row.DMJID)
	}
	local, server, err := row.DMUser.Parse()
	if err != nil {
		return nil, fmt.Errorf("direct chat %s: %w", row.RoomID, err)
	}
	userJID, err := deps.Scheme.UserJID(local, server)
	if err != nil {
		return nil, fmt.Errorf("direct chat %s: %s has no JID: %w", row.RoomID, row.DMUser, err)
	}
	nick := bare.Localpart()
	if nick == "" {
		nick = bare.Domainpart()
	}
	p := newPortal(row, deps, jid.JID{})
	p.log = deps.Log.With().Stringer("room_id", row.RoomID).Stringer("user_id", row.DMUser).Logger()
	p.direct = &direct{user: row.DMUser, userJID: userJID, remote: &occupant{
		bare: bare, nick: nick, puppet: deps.Matrix.PuppetID(bare.String()), sessions: map[string]jid.JID{},
	}}
	return p, nil
}

// loadDirect fills the loop's state of a direct chat.
func (p *Portal) loadDirect() {
	p.occupants = map[string]*occupant{p.direct.remote.bare.String(): p.direct.remote}
	p.roster.claim(p.direct.remote.nick, p.direct.remote.puppet)
}

// handleDirectMatrixEvent handles an event of a direct chat's Matrix room.
// Only the Matrix user's messages go to XMPP. It returns false when the
// chat ended.
func (p *Portal) handleDirectMatrixEvent(ctx context.Context, evt *event.Event) bool {
	d := p.direct
	switch evt.Type {
	case event.EventMessage:
		if evt.Sender == d.user {
			p.directMatrixMessage(ctx, evt)
		}
	case event.EventReaction:
		if evt.Sender == d.user {
			p.handleMatrixReaction(ctx, evt)
		}
	case event.EventRedaction:
		if evt.Sender == d.user {
			p.handleMatrixRedaction(ctx, evt)
		}
	case event.EphemeralEventTyping:
		p.handleMatrixTyping(ctx, evt)
	case event.EphemeralEventReceipt:
		p.handleMatrixReceipts(ctx, evt)
	case event.StateMember:
		if evt.StateKey == nil {
			return true
		}
		target := id.UserID(*evt.StateKey)
		content := evt.Content.AsMember()
		p.trackMembership(target, content)
		left := content.Membership == event.MembershipLeave || content.Membership == event.MembershipBan
		switch {
		case target == d.user && left:
			p.log.Info().Msg("The Matrix user left a direct chat; closing it")
			p.closeDirect(ctx, "The chat was left on Matrix")
			return false
		case (target == d.remote.puppet || target == p.deps.Matrix.BotID()) && left:
			p.log.Info().Stringer("user_id", target).Msg("The bridge was removed from a direct chat; closing it")
			p.closeDirect(ctx, "The bridge was removed from the chat")
			return false
		case target == d.user && content.Membership == event.MembershipJoin:
			p.roster.set(target, content.Displayname)
		}
	case event.StateEncryption:
		p.info.Encrypted = true
	}
	return true
}

// directMatrixMessage sends the Matrix user's message to the XMPP user as
// a chat message from the user's contact JID. Its id (and origin-id) is
// the event ID, by which the XMPP side refers to it in corrections, replies,
// reactions and retractions.
func (p *Portal) directMatrixMessage(ctx context.Context, evt *event.Event) {
	content := evt.Content.AsMessage()
	if content.MsgType == "" && content.Body == "" || p.alreadyBridged(ctx, evt) {
		return
	}
	d := p.direct
	rel := &msgconv.Relation{}
	render, _ := p.xmppRelations(ctx, evt.Sender, content, rel)
	if rel.Reply != nil {
		rel.Reply.ID, rel.Reply.To = p.directRef(ctx, id.EventID(rel.Reply.ID))
	}
	body, _ := p.xmppBody(ctx, render)
	link, oob, files, caption := p.conv.MediaPayloads(ctx, render)
	delay := p.late.Stamp(ctx, evt, p.roomJID.String())
	out := d.chat(&xmpp.Message{
		ID: evt.ID.String(), Body: body,
		OriginID: &xmpp.OriginID{ID: evt.ID.String()}, Markable: &xmpp.Empty{}, Nick: p.directNick(), Delay: delay,
	})
	if link != "" {
		out.Body, out.OOB, out.FileSharing = link, oob, files
	}
	rel.Apply(out)
	p.send(ctx, out)
	if caption != "" {
		p.send(ctx, d.chat(&xmpp.Message{ID: evt.ID.String() + "-caption", Body: caption, Delay: delay}))
	}
	p.markBridged(ctx, evt, rel, content)
}

// directNick is the Matrix user's name for XMPP clients (XEP-0172): their
// display name in the chat, else their localpart.
func (p *Portal) directNick() string {
	if m := p.roster.members[p.direct.user]; m != nil && m.displayname != "" {
		return m.displayname
	}
	return p.direct.user.Localpart()
}

// directRef is how the XMPP side of a direct chat names a Matrix event: the
// id its sender gave it, and who sent it (XEP-0461 wants both).
func (p *Portal) directRef(ctx context.Context, evtID id.EventID) (string, xmpp.Addr) {
	d := p.direct
	row, err := p.deps.DB.Message.GetByEventID(ctx, p.RoomID, evtID)
	if err != nil || row == nil {
		return evtID.String(), xmpp.A(d.userJID)
	}
	if row.SenderJID == d.remote.bare.String() {
		return row.StanzaID, xmpp.A(d.remote.bare)
	}
	return row.StanzaID, xmpp.A(d.userJID)
}

// handleDirectXMPPMessage handles a chat message from the XMPP user.
func (p *Portal) handleDirectXMPPMessage(ctx context.Context, msg *xmpp.Message) {
	occ := p.direct.remote
	switch {
	case !msg.From.Bare().Equal(occ.bare):
		p.log.Error().Stringer("from", msg.From).Msg("Dropping a stanza routed to the wrong direct chat")
		return
	case msg.Type == xmpp.TypeError:
		p.directBounce(ctx, msg)
		return
	case msg.Type == xmpp.TypeGroupchat:
		p.refuse(ctx, msg, xmpp.StanzaError(stanza.BadRequest, "This is a user, not a room"))
		return
	}
	p.handleOccupantMessage(ctx, occ, msg)
}

// directBounce tells the Matrix user that a message did not reach the XMPP
// user: the XMPP server answered it with an error.
func (p *Portal) directBounce(ctx context.Context, msg *xmpp.Message) {
	cond := "unknown error"
	if msg.Error != nil {
		cond = string(msg.Error.Condition)
		for _, text := range msg.Error.Text {
			cond += ": " + text
			break
		}
	}
	row, _ := p.deps.DB.Message.GetByEventID(ctx, p.RoomID, id.EventID(msg.ID))
	if row == nil {
		p.log.Info().Str("condition", cond).Str("id", msg.ID).Msg("XMPP bounced a stanza of a direct chat")
		return
	}
	p.log.Info().Str("condition", cond).Stringer("event_id", row.EventID).Msg("XMPP bounced a message of a direct chat")
	p.failed(ToXMPP, "bounced")
	text := fmt.Sprintf("Not delivered to %s (%s).", p.direct.remote.bare, cond)
	if _, err := p.deps.Matrix.SendNotice(ctx, p.RoomID, text, row.EventID); err != nil {
		p.log.Warn().Err(err).Msg("Failed to tell the Matrix user about a bounced message")
	}
}

// closeDirect ends a direct chat: the puppet and the bot leave the room and
// the portal row goes with its mappings. A later message opens a new chat.
func (p *Portal) closeDirect(ctx context.Context, reason string) {
	if err := p.deps.Matrix.LeavePuppet(ctx, p.RoomID, p.direct.remote.puppet, reason); err != nil {
		p.log.Warn().Err(err).Msg("Puppet failed to leave a direct chat")
	}
	if err := p.deps.Matrix.LeavePuppet(ctx, p.RoomID, p.deps.Matrix.BotID(), reason); err != nil {
		p.log.Warn().Err(err).Msg("Bot failed to leave a direct chat")
	}
	if err := p.deps.Matrix.ForgetRoom(ctx, p.RoomID); err != nil {
		p.log.Warn().Err(err).Msg("Failed to drop the cached state of a direct chat")
	}
	if err := p.deps.DB.Portal.Delete(ctx, p.RoomID); err != nil {
		p.log.Error().Err(err).Msg("Failed to delete a direct chat")
	}
	if p.deps.OnGone != nil {
		p.deps.OnGone(p)
	}
}

// handleDirectControl carries out the bridge's decisions in a direct chat:
// removing the XMPP user (forget, ban, a denied domain) ends it.
func (p *Portal) handleDirectControl(ctx context.Context, evt any) bool {
	switch e := evt.(type) {
	case Unexpose:
		defer close(e.Done)
	case Remove:
		if !e.Bare.Equal(p.direct.remote.bare) {
			e.Done <- false
			return true
		}
		defer func() { e.Done <- true }()
	case SettingsChanged:
		close(e.Done)
		return true
	}
	p.closeDirect(ctx, "The bridge no longer serves this chat")
	return false
}
