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
	"github.com/mxpp/mxpp/roomloop"
	"github.com/mxpp/mxpp/xmpp"
)

// A direct chat is a portal between one Matrix user and one XMPP user: a
// Matrix room marked is_direct, where the XMPP user's puppet and the bot are
// the other members, and one-to-one chat messages on XMPP, between the XMPP
// user and the Matrix user's contact JID. It runs the same loop and keeps
// the same message map as a room; the XMPP user stands in it as an occupant
// without sessions, so nothing meant for MUC occupants goes out; what the
// Matrix user does reaches the XMPP user as one-to-one chat messages.
type directChat struct {
	*Portal
	user    id.UserID // the Matrix user
	userJID jid.JID   // the Matrix user's contact JID on the component, or their occupant JID
	remote  *occupant // the XMPP user
	// private: the chat began as a private message to the Matrix user in
	// a hosted room, and they speak from their occupant JID there
	// (XEP-0045 §7.5), so that XMPP clients keep it with the room.
	private bool
}

// chat addresses a message of the Matrix user to the XMPP user, as a
// one-to-one chat message; a private one carries the MUC user payload
// that tells clients it comes through a room.
func (d *directChat) chat(m *xmpp.Message) *xmpp.Message {
	m.Type, m.From, m.To = xmpp.TypeChat, xmpp.A(d.userJID), xmpp.A(d.remote.bare)
	if d.private {
		m.MUCUser = &xmpp.MUCUser{}
	}
	return m
}

// NewDirect returns the portal of a direct chat row; Start runs it.
func NewDirect(row *database.Portal, deps *Deps) (*Portal, error) {
	if !row.IsDirect() {
		return nil, fmt.Errorf("portal %s is not a direct chat", row.RoomID)
	}
	// The XMPP side: a bare JID, or for a private chat with an occupant
	// of a MUC hosted elsewhere, their occupant JID.
	bare, err := xmpp.ParseJID(row.DMJID)
	if err != nil || bare.Resourcepart() != "" && row.DMPuppet == "" {
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
	if row.DMVia != "" {
		if userJID, err = xmpp.ParseJID(row.DMVia); err != nil || userJID.Resourcepart() == "" {
			return nil, fmt.Errorf("private chat %s: invalid occupant JID %q", row.RoomID, row.DMVia)
		}
	}
	nick, puppet := bare.Localpart(), deps.Matrix.PuppetID(bare.String())
	if nick == "" {
		nick = bare.Domainpart()
	}
	if row.DMPuppet != "" {
		nick, puppet = bare.Resourcepart(), row.DMPuppet
	}
	p := newPortal(row, deps, jid.JID{})
	p.log = roomloop.WithFields(deps.Log, "room_id", string(row.RoomID), "user_id", string(row.DMUser))
	p.kind = &directChat{Portal: p, user: row.DMUser, userJID: userJID, private: row.DMVia != "", remote: &occupant{
		bare: bare, nick: nick, puppet: puppet,
	}}
	return p, nil
}

// onLoad makes the XMPP user the chat's one occupant.
func (d *directChat) onLoad(context.Context) {
	d.occupants = map[string]*occupant{d.remote.bare.String(): d.remote}
	d.roster.claim(d.remote.nick, d.remote.puppet)
}

// onMatrixEvent handles an event of the chat's Matrix room. Only the
// Matrix user's messages go to XMPP. It returns false when the chat ended.
func (d *directChat) onMatrixEvent(ctx context.Context, evt *event.Event) bool {
	p := d.Portal
	switch evt.Type {
	case event.EventMessage:
		if evt.Sender == d.user {
			d.matrixMessage(ctx, evt)
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
			d.close(ctx, "The chat was left on Matrix")
			return false
		case (target == d.remote.puppet || target == p.deps.Matrix.BotID()) && left:
			p.log.Info().Stringer("user_id", target).Msg("The bridge was removed from a direct chat; closing it")
			d.close(ctx, "The bridge was removed from the chat")
			return false
		case target == d.user && content.Membership == event.MembershipJoin:
			p.roster.set(target, content.Displayname)
		}
	case event.StateEncryption:
		p.info.Encrypted = true
	}
	return true
}

// matrixMessage sends the Matrix user's message to the XMPP user as a chat
// message from the user's contact JID. Its id (and origin-id) is the event
// ID, by which the XMPP side refers to it in corrections, replies,
// reactions and retractions.
func (d *directChat) matrixMessage(ctx context.Context, evt *event.Event) {
	p := d.Portal
	content := evt.Content.AsMessage()
	if content.MsgType == "" && content.Body == "" || p.alreadyBridged(ctx, evt) {
		return
	}
	rel := &msgconv.Relation{}
	render, _ := p.xmppRelations(ctx, evt.Sender, content, rel)
	if rel.Reply != nil {
		rel.Reply.ID, rel.Reply.To = d.ref(ctx, id.EventID(rel.Reply.ID))
	}
	body, _ := p.xmppBody(ctx, render)
	link, oob, files, caption := p.conv.MediaPayloads(ctx, render)
	delay := p.late.Stamp(ctx, evt, p.roomJID.String())
	out := d.chat(&xmpp.Message{
		ID: evt.ID.String(), Body: body,
		OriginID: &xmpp.OriginID{ID: evt.ID.String()}, Markable: &xmpp.Empty{}, Nick: d.nick(), Delay: delay,
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

// nick is the Matrix user's name for XMPP clients (XEP-0172): their
// display name in the chat, else their localpart.
func (d *directChat) nick() string {
	if m := d.roster.members[d.user]; m != nil && m.displayname != "" {
		return m.displayname
	}
	return d.user.Localpart()
}

// ref is how the XMPP side of a direct chat names a Matrix event: the id
// its sender gave it, and who sent it (XEP-0461 wants both).
func (d *directChat) ref(ctx context.Context, evtID id.EventID) (string, xmpp.Addr) {
	row, err := d.deps.DB.Message.GetByEventID(ctx, d.RoomID, evtID)
	if err != nil || row == nil {
		return evtID.String(), xmpp.A(d.userJID)
	}
	if row.SenderJID == d.remote.bare.String() {
		return row.StanzaID, xmpp.A(d.remote.bare)
	}
	return row.StanzaID, xmpp.A(d.userJID)
}

// onXMPPMessage handles a chat message from the XMPP user.
func (d *directChat) onXMPPMessage(ctx context.Context, msg *xmpp.Message) {
	switch {
	case !msg.From.Bare().Equal(d.remote.bare) && !msg.From.Equal(d.remote.bare):
		d.log.Error().Stringer("from", msg.From).Msg("Dropping a stanza routed to the wrong direct chat")
		return
	case msg.Type == xmpp.TypeError:
		d.bounce(ctx, msg)
		return
	case msg.Type == xmpp.TypeGroupchat:
		d.refuse(ctx, msg, xmpp.StanzaError(stanza.BadRequest, "This is a user, not a room"))
		return
	}
	d.handleOccupantMessage(ctx, d.remote, msg)
}

// onBridged sends the delivery receipt the message asked for (XEP-0184):
// it is on the homeserver. One-to-one, a message is not reflected.
func (d *directChat) onBridged(ctx context.Context, msg *xmpp.Message, _ *occupant, _ id.EventID) {
	d.receipt(ctx, msg)
}

// onRepeat sends the receipt again: the sender did not get it and resent.
func (d *directChat) onRepeat(ctx context.Context, msg *xmpp.Message, _ *occupant, _ jid.JID, _ id.EventID) {
	d.receipt(ctx, msg)
}

// receipt confirms a message that asked for it (XEP-0184): from the
// address it was sent to, to its sender.
func (d *directChat) receipt(ctx context.Context, msg *xmpp.Message) {
	if !msg.ReceiptRequest || msg.ID == "" {
		return
	}
	d.send(ctx, &xmpp.Message{ID: xmpp.RandomID(), Type: xmpp.TypeChat, From: msg.To, To: msg.From, Received: &xmpp.Receipt{ID: msg.ID}})
}

// onSubject does nothing: a chat has no subject.
func (d *directChat) onSubject(context.Context, *occupant, *xmpp.Message) {}

// sharer is the XMPP user, whose file it was.
func (d *directChat) sharer(jid.JID) (*occupant, bool) { return d.remote, true }

// tellTyping sends the Matrix user's chat state; others in the room are
// not bridged.
func (d *directChat) tellTyping(ctx context.Context, u id.UserID, _ *member, state string) {
	if u == d.user {
		d.send(ctx, msgconv.WithChatState(d.chat(&xmpp.Message{NoStore: &xmpp.Empty{}}), state))
	}
}

// tellDisplayed sends the Matrix user's displayed marker for a message of
// the XMPP user, by the id the XMPP user gave it.
func (d *directChat) tellDisplayed(ctx context.Context, u id.UserID, _ *member, row *database.Message) {
	if u == d.user && row.SenderJID == d.remote.bare.String() {
		d.send(ctx, d.chat(&xmpp.Message{Displayed: &xmpp.Marker{ID: row.StanzaID}}))
	}
}

// tellReactions sends the Matrix user's reactions to a message.
func (d *directChat) tellReactions(ctx context.Context, _ string, userID id.UserID, target id.EventID, keys []string, _ *occupant) {
	if userID == d.user {
		ref, _ := d.ref(ctx, target)
		d.send(ctx, d.chat(&xmpp.Message{ID: xmpp.RandomID(), Reactions: &xmpp.Reactions{ID: ref, Reactions: keys}, Store: &xmpp.Empty{}}))
	}
}

// tellRetraction retracts a message of the Matrix user: one-to-one, only
// one's own messages can be retracted.
func (d *directChat) tellRetraction(ctx context.Context, _ string, author id.UserID, target id.EventID, moderator *xmpp.Moderated, _ string) {
	if author == d.user && moderator == nil {
		ref, _ := d.ref(ctx, target)
		d.send(ctx, d.chat(&xmpp.Message{ID: xmpp.RandomID(), Body: retractedBody, Retract: &xmpp.Retract{ID: ref},
			Fallbacks: []xmpp.Fallback{{For: xmpp.NSRetract}}, Store: &xmpp.Empty{}}))
	}
}

// bounce tells the Matrix user that a message did not reach the XMPP
// user: the XMPP server answered it with an error.
func (d *directChat) bounce(ctx context.Context, msg *xmpp.Message) {
	p := d.Portal
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
	text := fmt.Sprintf("Not delivered to %s (%s).", d.remote.bare, cond)
	if _, err := p.deps.Matrix.SendNotice(ctx, p.RoomID, text, row.EventID); err != nil {
		p.log.Warn().Err(err).Msg("Failed to tell the Matrix user about a bounced message")
	}
}

// close ends a direct chat: the puppet and the bot leave the room and the
// portal row goes with its mappings. A later message opens a new chat.
func (d *directChat) close(ctx context.Context, reason string) {
	p := d.Portal
	if err := p.deps.Matrix.LeavePuppet(ctx, p.RoomID, d.remote.puppet, reason); err != nil {
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

// onControl carries out the bridge's decisions in a direct chat: removing
// the XMPP user (forget, ban, a denied domain) ends it.
func (d *directChat) onControl(ctx context.Context, evt any) bool {
	switch e := evt.(type) {
	case Unexpose:
		defer close(e.Done)
	case Remove:
		if !e.Bare.Equal(d.remote.bare) {
			e.Done <- false
			return true
		}
		defer func() { e.Done <- true }()
	case SettingsChanged:
		close(e.Done)
		return true
	case PresenceChanged:
		return true // the contact hears it from the bridge (contact JID)
	case Moved:
		if d.private && e.Via.Resourcepart() != "" {
			d.userJID = e.Via
		}
		if d.private && e.Peer.Resourcepart() != "" {
			delete(d.occupants, d.remote.bare.String())
			d.remote.bare, d.remote.nick = e.Peer, e.Peer.Resourcepart()
			d.occupants[d.remote.bare.String()] = d.remote
		}
		return true
	}
	d.close(ctx, "The bridge no longer serves this chat")
	return false
}
