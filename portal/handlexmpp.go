package portal

import (
	"context"
	"errors"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"github.com/mxpp/mxpp/database"
	"github.com/mxpp/mxpp/msgconv"
	"github.com/mxpp/mxpp/roomloop"
	"github.com/mxpp/mxpp/xmpp"
)

// MaxBodyBytes bounds the body of a message from XMPP. A Matrix event may
// not exceed 64 KiB in all, and the event's envelope needs some of that.
const MaxBodyBytes = 60 << 10

func (p *Portal) handleXMPPPresence(ctx context.Context, pres *xmpp.Presence) {
	switch pres.Type {
	case "":
		p.handleJoin(ctx, pres)
	case xmpp.TypeUnavailable:
		p.handleLeave(ctx, pres)
	case xmpp.TypeError:
		// An occupant's client or server bounced what we sent: the session
		// is gone (XEP-0045 §7.14 lets the service remove it).
		if occ, ok := p.session(pres.From.JID); ok {
			p.removeSession(ctx, occ, pres.From.JID, false, "The XMPP client went away")
		}
	default:
		p.log.Debug().Str("type", pres.Type).Stringer("from", pres.From).Msg("Ignoring presence of unhandled type")
	}
}

// session returns the occupant that joined from a full JID.
func (p *Portal) session(full jid.JID) (*occupant, bool) {
	occ := p.occupants[full.Bare().String()]
	if occ == nil {
		return nil, false
	}
	return occ, occ.find(full) != nil
}

// handleJoin handles available presence to room/nick: a join, a rejoin, a
// second session of an occupant, or a status update (XEP-0045 §7.2, §7.7).
func (p *Portal) handleJoin(ctx context.Context, pres *xmpp.Presence) {
	from, nick := pres.From.JID, pres.To.Resourcepart()
	defer p.followAvatar(pres)
	log := roomloop.WithFields(p.log, "jid", from.String(), "nick", nick)
	fail := func(cond stanza.Condition, text string) {
		log.Debug().Str("condition", string(cond)).Str("reason", text).Msg("Refusing join")
		p.refuse(ctx, pres, xmpp.StanzaError(cond, text))
	}
	switch {
	case nick == "":
		fail(stanza.JIDMalformed, "A nickname is required to join the room")
		return
	case from.Resourcepart() == "":
		fail(stanza.BadRequest, "Only clients with a full JID can join")
		return
	case cleanNick(nick) != nick:
		fail(stanza.NotAcceptable, "This nickname cannot be used")
		return
	}
	bare := from.Bare()
	if occ := p.occupants[bare.String()]; occ != nil {
		if occ.nick != nick {
			if occ.find(from) != nil {
				p.changeNick(ctx, occ, from, pres)
			} else {
				fail(stanza.NotAcceptable, "You are in this room as "+occ.nick+" from another client; join with that nickname")
			}
			return
		}
		if occ.find(from) != nil && pres.MUC == nil {
			// A status change of a joined session (§7.7): share it.
			p.broadcastStatus(ctx, occ, from, pres)
			return
		}
		// A second session of the occupant, or a rejoin (the client lost
		// track of the room): send it the room as on a first join.
		if err := p.addSession(ctx, occ, from); err != nil {
			log.Error().Err(err).Msg("Failed to store occupant session")
			fail(stanza.InternalServerError, "")
			return
		}
		p.sendRoomState(ctx, occ, from, pres.MUC)
		return
	}
	if _, taken := p.roster.owns(nick); taken {
		fail(stanza.Conflict, "This nickname is already in use in the room")
		return
	}
	if serr := p.refusal(bare); serr != nil {
		p.deps.Audit.Info().Str("action", "join").Stringer("jid", bare).Stringer("room_id", p.RoomID).
			Str("result", "refused").Str("reason", serr.Error()).Msg("Refused an XMPP join")
		fail(serr.Condition, serr.Error())
		return
	}
	puppet := p.deps.Matrix.PuppetID(bare.String())
	if !p.mayJoin(puppet) {
		fail(stanza.RegistrationRequired, "This room is members-only: you need an invitation from a member")
		return
	}
	if !p.allowChurn(bare.String()) {
		fail(stanza.ResourceConstraint, "You joined and left this room too often; try again in a minute")
		return
	}
	err := p.deps.DB.Puppet.Upsert(ctx, &database.Puppet{JID: bare.String(), MXID: puppet, Registered: true, CreatedAt: time.Now()})
	if err != nil {
		log.Error().Err(err).Msg("Failed to store puppet")
		fail(stanza.InternalServerError, "")
		return
	}
	if err = p.deps.Matrix.JoinPuppet(ctx, p.RoomID, puppet, nick); err != nil {
		log.Warn().Err(err).Msg("Puppet could not join the Matrix room")
		if errors.Is(err, mautrix.MForbidden) {
			fail(stanza.Forbidden, "You are not allowed to join this room")
		} else {
			fail(stanza.RemoteServerTimeout, "The Matrix homeserver did not let you join")
		}
		return
	}
	occ := &occupant{bare: bare, nick: nick, puppet: puppet}
	if err = p.addSession(ctx, occ, from); err != nil {
		log.Error().Err(err).Msg("Failed to store occupant")
		fail(stanza.InternalServerError, "")
		return
	}
	p.occupants[bare.String()] = occ
	p.roster.claim(nick, puppet)
	log.Info().Stringer("puppet", puppet).Msg("XMPP user joined")
	p.puppetPresence(occ, pres)
	if bare.Domainpart() != p.deps.HomeDomain {
		p.deps.Audit.Info().Str("action", "join").Stringer("jid", bare).Stringer("room_id", p.RoomID).
			Str("result", "joined").Msg("XMPP user from another domain joined")
	}
	// Everyone else learns of the new occupant; it gets the room itself.
	p.broadcast(ctx, occ, func(to jid.JID) any {
		return p.availablePresence(occ.puppet, nick, to, p.occupantItem(occ, from))
	})
	p.sendRoomState(ctx, occ, from, pres.MUC)
}

func (p *Portal) addSession(ctx context.Context, occ *occupant, full jid.JID) error {
	err := p.deps.DB.Occupant.Upsert(ctx, &database.Occupant{
		RoomID: p.RoomID, FullJID: full.String(), UserJID: occ.bare.String(), Nick: occ.nick, JoinedAt: time.Now(),
	})
	if err == nil {
		s := occ.join(full)
		s.lastSeen, s.misses = time.Now(), 0
	}
	return err
}

// sendRoomState sends a joining session what XEP-0045 §7.2.3 orders: the
// presence of every other occupant, its own presence with status 110, the
// history it may see, and the subject.
func (p *Portal) sendRoomState(ctx context.Context, self *occupant, to jid.JID, join *xmpp.MUCJoin) {
	for _, m := range p.roster.members {
		p.send(ctx, p.availablePresence(m.userID, m.nick, to, p.memberItem(m)))
	}
	for _, o := range p.occupants {
		if o != self {
			p.send(ctx, p.availablePresence(o.puppet, o.nick, to, p.occupantItem(o, jid.JID{})))
		}
	}
	p.send(ctx, p.availablePresence(self.puppet, self.nick, to, p.occupantItem(self, to),
		xmpp.StatusSelf, xmpp.StatusNonAnonymous, xmpp.StatusLogged))
	var history *xmpp.MUCHistory
	if join != nil {
		history = join.History
	}
	p.sendHistory(ctx, self, to, history)
	p.send(ctx, p.subjectMessage(to))
}

// broadcastStatus shares a joined session's new show/status (§7.7).
func (p *Portal) broadcastStatus(ctx context.Context, occ *occupant, from jid.JID, pres *xmpp.Presence) {
	p.puppetPresence(occ, pres)
	for _, o := range p.occupants {
		for _, s := range o.jids() {
			var status []int
			if s.Equal(from) {
				status = []int{xmpp.StatusSelf}
			}
			out := p.availablePresence(occ.puppet, occ.nick, s, p.occupantItem(occ, from), status...)
			out.Show, out.Status = pres.Show, pres.Status
			p.send(ctx, out)
		}
	}
}

// handleLeave handles unavailable presence to the room (§7.14).
func (p *Portal) handleLeave(ctx context.Context, pres *xmpp.Presence) {
	occ, ok := p.session(pres.From.JID)
	if !ok {
		// Not (or no longer) an occupant: confirm anyway, so that the
		// client's idea of the room matches ours.
		nick := pres.To.Resourcepart()
		if nick != "" {
			item := xmpp.MUCItem{Affiliation: xmpp.AffNone, Role: xmpp.RoleNone}
			p.send(ctx, p.unavailablePresence("", nick, pres.From.JID, item, xmpp.StatusSelf))
		}
		return
	}
	p.log.Info().Stringer("jid", pres.From).Str("nick", occ.nick).Msg("XMPP session left")
	p.removeSession(ctx, occ, pres.From.JID, true, "Left the XMPP room")
}

// removeSession ends one session of an occupant. When it was the last, the
// occupant leaves the room for everyone, and its puppet leaves Matrix.
func (p *Portal) removeSession(ctx context.Context, occ *occupant, session jid.JID, notifySelf bool, reason string) {
	occ.leave(session)
	if err := p.deps.DB.Occupant.Delete(ctx, p.RoomID, session.String()); err != nil {
		p.log.Error().Err(err).Stringer("jid", session).Msg("Failed to delete occupant session")
	}
	if notifySelf {
		p.send(ctx, p.unavailablePresence(occ.puppet, occ.nick, session, p.occupantItem(occ, session), xmpp.StatusSelf))
	}
	if len(occ.sessions) > 0 {
		return
	}
	p.dropOccupant(ctx, occ)
	p.broadcast(ctx, nil, func(to jid.JID) any {
		return p.unavailablePresence(occ.puppet, occ.nick, to, p.occupantItem(occ, session))
	})
	if err := p.deps.Matrix.LeavePuppet(ctx, p.RoomID, occ.puppet, reason); err != nil {
		p.log.Error().Err(err).Stringer("puppet", occ.puppet).Msg("Puppet failed to leave the Matrix room")
	}
}

// dropOccupant forgets an occupant whose sessions are all gone.
func (p *Portal) dropOccupant(ctx context.Context, occ *occupant) {
	delete(p.occupants, occ.bare.String())
	p.roster.release(occ.nick, occ.puppet)
	if err := p.deps.DB.Occupant.DeleteUser(ctx, p.RoomID, occ.bare.String()); err != nil {
		p.log.Error().Err(err).Stringer("jid", occ.bare).Msg("Failed to delete occupant")
	}
	// Kept for bridge.puppet_retention once the user is in no room at all.
	if rest, err := p.deps.DB.Occupant.GetByUser(ctx, occ.bare.String()); err == nil && len(rest) == 0 {
		p.puppetPresence(occ, nil)
		if err = p.deps.DB.Puppet.SetLeftAt(ctx, occ.bare.String(), time.Now()); err != nil {
			p.log.Error().Err(err).Msg("Failed to note when a puppet left")
		}
	}
}

// handleRoomXMPPMessage handles a message stanza to a room or one of its
// occupants.
func (p *Portal) handleRoomXMPPMessage(ctx context.Context, msg *xmpp.Message) {
	from := msg.From.JID
	reject := func(cond stanza.Condition, text string) {
		p.refuse(ctx, msg, xmpp.StanzaError(cond, text))
	}
	switch {
	case msg.Type != xmpp.TypeError && msg.MUCUser != nil && len(msg.MUCUser.Invite) > 0 && msg.To.Resourcepart() == "":
		p.handleMediatedInvite(ctx, msg)
		return
	case msg.Type == xmpp.TypeError:
		if occ, ok := p.session(from); ok && sessionGone(msg.Error) {
			p.removeSession(ctx, occ, from, false, "The XMPP client went away")
		}
		return
	case msg.Type != xmpp.TypeGroupchat:
		if msg.To.Resourcepart() != "" {
			p.handlePrivate(ctx, msg)
		} else if msg.Body != "" {
			reject(stanza.NotAcceptable, "Send messages to the room with type groupchat")
		}
		return
	case msg.To.Resourcepart() != "":
		reject(stanza.BadRequest, "A groupchat message goes to the room, not to an occupant")
		return
	}
	occ, ok := p.session(from)
	if !ok {
		reject(stanza.NotAcceptable, "You are not in this room")
		return
	}
	p.handleOccupantMessage(ctx, occ, msg)
}

// handleOccupantMessage bridges what an XMPP user sent to the room (or to
// the Matrix user of a direct chat): a retraction, reactions, markers, chat
// states, or a message.
func (p *Portal) handleOccupantMessage(ctx context.Context, occ *occupant, msg *xmpp.Message) {
	from := msg.From.JID
	reject := func(cond stanza.Condition, text string) {
		p.refuse(ctx, msg, xmpp.StanzaError(cond, text))
	}
	switch {
	case msg.Retract != nil:
		p.handleXMPPRetraction(ctx, occ, msg)
		return
	case msg.Reactions != nil:
		p.handleXMPPReactions(ctx, occ, msg)
		return
	case msg.Displayed != nil:
		p.handleXMPPDisplayed(ctx, occ, msg.Displayed)
	}
	if state := msgconv.ChatState(msg); state != "" && msg.Body == "" {
		p.handleXMPPChatState(ctx, occ, state)
	}
	if msg.Body == "" {
		if msg.Subject != nil {
			p.kind.onSubject(ctx, occ, msg)
		}
		return // payload-only messages
	}
	if len(msg.Body) > MaxBodyBytes {
		reject(stanza.NotAcceptable, "The message is too long for Matrix")
		return
	}
	stanzaID := msgconv.StanzaIDOf(msg)
	log := roomloop.WithFields(p.log, "jid", from.String(), "stanza_id", stanzaID)
	var reuses id.EventID // the earlier message whose plain id this one reuses
	if stanzaID != "" {
		prev, err := p.deps.DB.Message.GetByStanzaID(ctx, p.RoomID, occ.bare.String(), stanzaID)
		switch {
		case err != nil:
			log.Error().Err(err).Msg("Failed to look up message")
		case prev != nil && reusedID(msg, prev):
			reuses = prev.EventID
		case prev != nil:
			// A resend of a message that is already on Matrix: only its
			// sender needs the reflection again.
			log.Debug().Stringer("event_id", prev.EventID).Msg("Ignoring repeated XMPP message")
			p.kind.onRepeat(ctx, msg, occ, from, prev.EventID)
			return
		}
	}
	if link := msgconv.MediaLink(msg); link != "" && p.deps.Fetcher != nil {
		// Fetching and uploading a file can take long. It runs beside the
		// loop: Matrix events and everyone else's stanzas go on meanwhile
		// (one slow download must not hold up the room, nor the appservice
		// transactions of every room), and the sender's later stanzas wait
		// for it, to keep their order.
		p.HoldSender(msg.From.Bare().String())
		puppet := occ.puppet
		go func() {
			mctx, cancel := context.WithTimeout(p.Context(), mediaTimeout)
			defer cancel()
			content, err := p.conv.MatrixMedia(mctx, p.deps.Matrix, p.deps.Matrix.IsEncrypted(mctx, p.RoomID), puppet, link)
			p.Queue(p.Context(), mediaReady{msg: msg, content: content, err: err, reuses: reuses})
		}()
		return
	}
	p.bridgeXMPPMessage(ctx, msg, occ, nil, reuses)
}

// mediaReady is a shared file fetched and uploaded for an XMPP message, or
// the error that stopped it.
type mediaReady struct {
	msg     *xmpp.Message
	content *event.MessageEventContent
	err     error
	reuses  id.EventID
}

// mediaTimeout bounds fetching and uploading one shared file.
const mediaTimeout = 5 * time.Minute

// handleMediaReady sends the message of a fetched file, and then what its
// sender sent meanwhile.
func (p *Portal) handleMediaReady(ctx context.Context, m mediaReady) {
	defer p.ReleaseSender(m.msg.From.Bare().String())
	occ, ok := p.kind.sharer(m.msg.From.JID)
	if !ok {
		p.log.Info().Stringer("jid", m.msg.From).Msg("Dropping a shared file: its sender left the room meanwhile")
		return
	}
	if m.err != nil {
		p.log.Warn().Err(m.err).Stringer("jid", m.msg.From).Msg("Failed to bridge a shared file; sending the link instead")
		p.failed(ToMatrix, "media_fetch")
	}
	p.bridgeXMPPMessage(ctx, m.msg, occ, m.content, m.reuses)
}

// bridgeXMPPMessage sends an XMPP message to Matrix as its sender's puppet,
// notes the mapping and reflects it to the room. content is the file it
// shared, if any, else the message's text is sent. reuses is the earlier
// message whose plain stanza id this one reuses, if any.
func (p *Portal) bridgeXMPPMessage(ctx context.Context, msg *xmpp.Message, occ *occupant, content *event.MessageEventContent, reuses id.EventID) {
	from := msg.From.JID
	reject := func(cond stanza.Condition, text string) {
		p.refuse(ctx, msg, xmpp.StanzaError(cond, text))
	}
	stanzaID := msgconv.StanzaIDOf(msg)
	log := roomloop.WithFields(p.log, "jid", from.String(), "stanza_id", stanzaID)
	if content == nil {
		content = p.matrixContent(msgconv.StripReplyFallback(msg))
	}
	target := p.addXMPPRelations(ctx, occ, msg, content)
	txn := messageTxnID(p.RoomID, occ, msg, stanzaID, reuses)
	evtID, err := p.sendOnce(ctx, occ.puppet, txn, event.EventMessage, content)
	if err != nil {
		log.Error().Err(err).Msg("Failed to send XMPP message to Matrix")
		p.failed(ToMatrix, "matrix_send")
		switch {
		case errors.Is(err, mautrix.MForbidden):
			reject(stanza.Forbidden, "You may not send messages to this room")
		case errors.Is(err, mautrix.MTooLarge):
			reject(stanza.NotAcceptable, "The message is too large for Matrix")
		default:
			reject(stanza.RemoteServerTimeout, "The message could not be delivered to Matrix")
		}
		return
	}
	log.Debug().Stringer("event_id", evtID).Msg("Bridged XMPP message to Matrix")
	p.bridged(ToMatrix, msgconv.MessageKind(content))
	if stanzaID != "" {
		err = p.sender().Store(ctx, &database.Message{RoomID: p.RoomID, EventID: evtID, SenderJID: occ.bare.String(),
			StanzaID: stanzaID, TargetEventID: target, Timestamp: time.Now()}, txn)
		if err != nil {
			log.Error().Err(err).Msg("Failed to store message mapping")
		}
	}
	p.kind.onBridged(ctx, msg, occ, evtID)
}

// reflection is an XMPP message as the room sends it to one session: with
// the sender's own id and origin-id, so that the sender recognises its echo,
// and the Matrix event ID as the room's stanza-id (XEP-0359).
func (p *Portal) reflection(msg *xmpp.Message, occ *occupant, to jid.JID, eventID string) *xmpp.Message {
	return &xmpp.Message{
		ID: msg.ID, Type: xmpp.TypeGroupchat, From: xmpp.A(p.occupantJID(occ.nick)), To: xmpp.A(to),
		Body:        msg.Body,
		StanzaID:    &xmpp.StanzaID{ID: eventID, By: p.roomJID.String()},
		OriginID:    msg.OriginID,
		OccupantID:  p.occupantID(occ.puppet),
		References:  msg.References,
		Replace:     msg.Replace,
		Reply:       msg.Reply,
		Fallbacks:   msg.Fallbacks,
		OOB:         msg.OOB,
		FileSharing: msg.FileSharing,
	}
}

// sendOnce sends an event for an XMPP stanza, as sender, exactly once
// (msgconv.Sender).
func (p *Portal) sendOnce(ctx context.Context, sender id.UserID, txn string, evtType event.Type, content any) (id.EventID, error) {
	return p.sender().Send(ctx, sender, txn, evtType, content, time.Time{})
}

func (p *Portal) sender() msgconv.Sender {
	return msgconv.Sender{DB: p.deps.DB, Matrix: p.deps.Matrix, RoomID: p.RoomID}
}

// PlainIDWindow is how long a message's plain stanza id (one without an
// XEP-0359 origin-id) marks a later stanza with that id as a resend of it:
// longer than a client with stream management waits to resume (Prosody
// keeps a session 10 minutes), short enough for clients that reuse ids.
// An origin-id is unique by definition and marks resends as long as the
// mapping is kept.
const PlainIDWindow = 15 * time.Minute

// reusedID reports whether msg, whose stanza id names the earlier message
// prev, is a new message that reuses a plain id rather than a resend.
func reusedID(msg *xmpp.Message, prev *database.Message) bool {
	return (msg.OriginID == nil || msg.OriginID.ID == "") && time.Since(prev.Timestamp) > PlainIDWindow
}

// messageTxnID is the transaction ID of an XMPP message's Matrix event:
// derived from its stanza id, so that a resend is the same transaction; for
// a new message that reuses a plain id (reuses names the earlier one), also
// from the event it reuses it from, so that a homeserver that still knows
// the old transaction does not answer with the old event.
func messageTxnID(room id.RoomID, occ *occupant, msg *xmpp.Message, stanzaID string, reuses id.EventID) string {
	if reuses != "" {
		stanzaID += "\x00" + reuses.String()
	}
	return msgconv.TxnID(room.String(), occ.bare.String(), stanzaID, msg.ID)
}

// sessionGone reports whether a bounced stanza means that the session no
// longer exists, rather than that one stanza was refused.
func sessionGone(e *stanza.Error) bool {
	if e == nil {
		return false
	}
	switch e.Condition {
	case stanza.ServiceUnavailable, stanza.RecipientUnavailable, stanza.ItemNotFound,
		stanza.RemoteServerNotFound, stanza.RemoteServerTimeout, stanza.Gone:
		return true
	}
	return false
}

// followAvatar copies an occupant's avatar to its puppet when its presence
// carries an XEP-0153 hash (the copier skips hashes it already copied).
func (p *Portal) followAvatar(pres *xmpp.Presence) {
	if p.deps.PuppetAvatars == nil || pres.VCardUpdate == nil || pres.VCardUpdate.Photo == nil {
		return
	}
	occ, ok := p.session(pres.From.JID)
	if !ok {
		return
	}
	p.deps.PuppetAvatars.Update(occ.bare, occ.puppet, *pres.VCardUpdate.Photo)
}
