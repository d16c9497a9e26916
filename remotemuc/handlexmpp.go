package remotemuc

import (
	"context"
	"errors"
	"strings"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
	"mellium.im/xmpp/jid"

	"github.com/mxpp/mxpp/database"
	"github.com/mxpp/mxpp/msgconv"
	"github.com/mxpp/mxpp/roomloop"
	"github.com/mxpp/mxpp/xmpp"
)

// MaxBodyBytes bounds the body of a message from the MUC: a Matrix event
// may not exceed 64 KiB in all.
const MaxBodyBytes = 60 << 10

// names is how the portal names the room's members for msgconv.
type names struct{ p *Portal }

var _ msgconv.Names = names{}

func (n names) RoomJID() jid.JID { return n.p.room }

// NickOf returns the nick of a Matrix user's occupant or of a puppet's
// occupant.
func (n names) NickOf(u id.UserID) string {
	if m := n.p.members[u]; m != nil {
		return m.occ.Tried()
	}
	if x := n.p.others.byPuppet(u); x != nil {
		return x.nick
	}
	return ""
}

func (n names) UserOfNick(nick string) (id.UserID, bool) {
	if x := n.p.others.get(nick); x != nil {
		return x.puppet, true
	}
	for _, m := range n.p.members {
		if m.occ.Claims(nick) {
			return m.user, true
		}
	}
	return "", false
}

// MemberOfJID maps a Matrix user's JID on the component, or the real JID
// of an occupant of a non-anonymous room, to the member it is.
func (n names) MemberOfJID(j jid.JID) (id.UserID, bool) {
	if local, server, err := n.p.deps.Scheme.ParseUserJID(j); err == nil {
		u := id.NewUserID(local, server)
		_, ok := n.p.members[u]
		return u, ok
	}
	if x := n.p.others.byRealJID(j.Bare()); x != nil {
		return x.puppet, true
	}
	return "", false
}

// handleXMPPMessage takes a message the room sent one of our occupants.
// Nothing here is ever answered with an error: a MUC removes an occupant
// that bounces its messages.
func (p *Portal) handleXMPPMessage(ctx context.Context, msg *xmpp.Message) {
	p.heard()
	m := p.memberByJID(msg.To.JID)
	switch {
	case m != nil && msg.Type != xmpp.TypeGroupchat && msg.From.Resourcepart() != "":
		p.handlePrivate(ctx, m, msg)
		return
	case msg.Type == xmpp.TypeError:
		p.handleBounce(ctx, m, msg)
		return
	case m != nil && msg.MAMResult != nil:
		p.handleArchived(ctx, m, msg)
		return
	case m == nil || msg.Type != xmpp.TypeGroupchat:
		// Mediated invitations are not bridged yet; they are dropped
		// without an error.
		p.log.Debug().Str("type", msg.Type).Stringer("from", msg.From).Msg("Ignoring a message from the MUC")
		return
	case p.handleHistory(ctx, m, msg):
		return // a history check after a rejoin (archive.go)
	case p.hold(msg):
		return // after the catch-up
	}
	p.handleGroupchat(ctx, m, msg, "")
}

// handlePrivate takes another occupant's private message to a member's
// occupant (XEP-0045 §7.5), or the bounce of one the member sent: the
// bridge carries it to their private chat. One from an occupant the
// portal does not know is dropped.
func (p *Portal) handlePrivate(ctx context.Context, m *member, msg *xmpp.Message) {
	x := p.others.get(msg.From.Resourcepart())
	if x == nil || p.deps.Private == nil {
		p.log.Debug().Stringer("from", msg.From).Msg("Dropping a private message from an unknown occupant")
		return
	}
	p.deps.Private(ctx, msg, m.user, m.occ.From, x.puppet)
}

// handleGroupchat bridges a groupchat message of the room, live (to
// member m) or from its archive (archiveID is then its stanza-id).
func (p *Portal) handleGroupchat(ctx context.Context, m *member, msg *xmpp.Message, archiveID string) {
	nick := msg.From.Resourcepart()
	if msg.Subject != nil && msg.Body == "" {
		if archiveID == "" {
			p.handleSubject(ctx, nick, *msg.Subject)
		}
		return
	}
	if nick == "" {
		// The room's own: a moderator's removal (XEP-0425), or notes
		// (configuration changes) that are not bridged.
		if r := msg.Retract; r != nil && r.Moderated != nil && archiveID == "" {
			key, _ := p.messageKey(msg)
			if !p.seen.note(key, m.user.String()) {
				p.handleModeration(ctx, r)
			}
		}
		return
	}
	key, roomSID := p.messageKey(msg)
	to := m.user.String()
	if archiveID != "" {
		key, roomSID, to = "sid\x00"+archiveID, archiveID, ""
	}
	if p.seen.note(key, to) {
		return // a copy sent to another of our occupants, or one the archive brought
	}
	if roomSID != "" {
		if row, err := p.deps.DB.Message.GetByRoomStanzaID(ctx, p.RoomID, roomSID); err == nil && row != nil {
			return // bridged already (from the archive, or before a restart)
		}
	}
	if p.reflection(ctx, nick, msg, roomSID) {
		return
	}
	x := p.others.get(nick)
	if x == nil {
		// A message from an occupant whose presence the bridge did not
		// see (it left meanwhile, or the archive brought it): known by
		// the message alone.
		x = p.identify(ctx, nick, msg.OccupantID, xmpp.MUCItem{})
	}
	p.handleOtherMessage(ctx, x, msg, roomSID)
}

// messageKey names a message of the room for finding its copies: the
// room's stanza-id where the room gives trusted ones (XEP-0359: by the room,
// and advertised), else the sender's nick and id.
func (p *Portal) messageKey(msg *xmpp.Message) (key, roomSID string) {
	if sid := msg.StanzaID; p.muc.StanzaIDs && sid != nil && sid.ID != "" && sid.By == p.room.String() {
		return "sid\x00" + sid.ID, sid.ID
	}
	return "id\x00" + msg.From.Resourcepart() + "\x00" + msg.ID, ""
}

// reflection reports whether a message is one of ours coming back: it
// carries the event ID the bridge sent it with, or comes from the nick of
// one of our occupants. It never reaches Matrix again; it tells the
// room's stanza-id of the event.
func (p *Portal) reflection(ctx context.Context, nick string, msg *xmpp.Message, roomSID string) bool {
	origin := msgconv.StanzaIDOf(msg)
	if strings.HasPrefix(origin, "$") {
		row, err := p.deps.DB.Message.GetByEventID(ctx, p.RoomID, id.EventID(origin))
		if err == nil && row != nil && p.isMemberJID(row.SenderJID) {
			for _, m := range p.members {
				if m.occ.From.Bare().String() == row.SenderJID {
					m.sent.confirm(origin)
				}
			}
			if roomSID != "" && row.RoomStanzaID == "" {
				if err = p.deps.DB.Message.SetRoomStanzaID(ctx, p.RoomID, row.EventID, roomSID); err != nil {
					p.log.Error().Err(err).Msg("Failed to store the room's stanza-id of a message")
				}
				p.noteLast(ctx, roomSID)
			}
			p.reflected(row.EventID)
			return true
		}
	}
	for _, m := range p.members {
		if m.occ.Claims(nick) {
			if strings.HasPrefix(origin, "$") {
				// Sent by the bridge before a restart, unmapped.
				p.took.add(origin, "")
			}
			p.log.Debug().Str("nick", nick).Str("id", origin).Msg("Ignoring a message from one of our occupants that the bridge has no mapping for")
			return true
		}
	}
	return false
}

// isMemberJID reports whether a message map sender is a Matrix user's JID.
func (p *Portal) isMemberJID(sender string) bool {
	j, err := xmpp.ParseJID(sender)
	if err != nil {
		return false
	}
	_, _, err = p.deps.Scheme.ParseUserJID(j)
	return err == nil
}

// handleOtherMessage bridges what another occupant said (or retracted, or
// reacted) to Matrix, as its puppet.
func (p *Portal) handleOtherMessage(ctx context.Context, x *other, msg *xmpp.Message, roomSID string) {
	if p.handleOtherPayloads(ctx, x, msg) {
		return
	}
	if len(msg.Body) > MaxBodyBytes {
		p.log.Warn().Str("nick", x.nick).Int("bytes", len(msg.Body)).Msg("Dropping a message from the MUC that is too long for Matrix")
		p.notice(ctx, "A message from "+x.nick+" was too long for Matrix and was not bridged.", "")
		return
	}
	p.showOther(ctx, x)
	if link := msgconv.MediaLink(msg); link != "" && p.deps.Conv.Fetcher != nil {
		// Fetching a file can take long: Matrix events and the others'
		// stanzas go on meanwhile, and the sender's later stanzas wait for
		// it, to keep their order.
		p.HoldSender(msg.From.String())
		puppet := x.puppet
		go func() {
			mctx, cancel := context.WithTimeout(p.Context(), mediaTimeout)
			defer cancel()
			content, err := p.deps.Conv.MatrixMedia(mctx, p.deps.Matrix, p.deps.Matrix.IsEncrypted(mctx, p.RoomID), puppet, link)
			p.Queue(p.Context(), mediaReady{msg: msg, x: x, roomSID: roomSID, content: content, err: err})
		}()
		return
	}
	p.bridgeMessage(ctx, x, msg, roomSID, nil)
}

// mediaTimeout bounds fetching and uploading one shared file.
const mediaTimeout = 5 * time.Minute

// mediaReady is a shared file fetched and uploaded, or why it was not.
type mediaReady struct {
	msg     *xmpp.Message
	x       *other
	roomSID string
	content *event.MessageEventContent
	err     error
}

func (p *Portal) handleMediaReady(ctx context.Context, r mediaReady) {
	defer p.ReleaseSender(r.msg.From.String())
	if r.err != nil {
		p.log.Warn().Err(r.err).Msg("Failed to bridge a shared file; sending the link instead")
		p.failed(roomloop.ToMatrix, "media_fetch")
	}
	p.bridgeMessage(ctx, r.x, r.msg, r.roomSID, r.content)
}

// bridgeMessage sends an occupant's message to Matrix as its puppet and
// notes the mapping. content is the file it shared, if any.
func (p *Portal) bridgeMessage(ctx context.Context, x *other, msg *xmpp.Message, roomSID string, content *event.MessageEventContent) {
	stanzaID := msgconv.StanzaIDOf(msg)
	log := roomloop.WithFields(p.log, "nick", x.nick, "stanza_id", stanzaID, "room_stanza_id", roomSID)
	if content == nil {
		content = msgconv.MatrixContent(names{p}, msgconv.StripReplyFallback(msg))
	}
	target := p.addRelations(ctx, x, msg, content)
	// The transaction ID makes a resend of the stanza the same event: by
	// the room's stanza-id, or without one by the sender's id and the text,
	// so that a client reusing an id for a new message is not taken for a
	// resend.
	key := roomSID
	if key == "" && stanzaID != "" {
		key = stanzaID + "\x00" + msg.Body
	}
	txn := msgconv.TxnID(p.RoomID.String(), x.key, key, "")
	var ts time.Time
	if msg.Delay != nil && !msg.Delay.Stamp.IsZero() {
		ts = msg.Delay.Stamp
	}
	evtID, err := p.sender().Send(ctx, x.puppet, txn, event.EventMessage, content, ts)
	if err != nil {
		log.Error().Err(err).Msg("Failed to send a message from the MUC to Matrix")
		p.failed(roomloop.ToMatrix, "matrix_send")
		if errors.Is(err, mautrix.MForbidden) {
			p.notice(ctx, "A message from "+x.nick+" could not be bridged: its puppet may not send here.", "")
		}
		return
	}
	log.Debug().Stringer("event_id", evtID).Msg("Bridged a message from the MUC to Matrix")
	p.bridged(roomloop.ToMatrix, msgconv.MessageKind(content))
	err = p.sender().Store(ctx, &database.Message{RoomID: p.RoomID, EventID: evtID, SenderJID: x.key,
		StanzaID: stanzaID, TargetEventID: target, Timestamp: time.Now(), RoomStanzaID: p.roomRef(msg, roomSID)}, txn)
	if err != nil {
		log.Error().Err(err).Msg("Failed to store message mapping")
	}
	p.noteLast(ctx, roomSID)
}

// noteLast keeps the room's stanza-id of the newest message bridged, where
// a catch-up after an outage starts (the archive's pages come oldest
// first, so an interrupted catch-up goes on from where it stopped).
func (p *Portal) noteLast(ctx context.Context, roomSID string) {
	if roomSID == "" {
		return
	}
	p.stored.LastStanzaID, p.stored.LastTime = roomSID, time.Now()
	if err := p.deps.DB.RemoteRoom.SetLast(ctx, p.RoomID, roomSID, p.stored.LastTime); err != nil {
		p.log.Error().Err(err).Msg("Failed to note the newest message of the room")
	}
}

// addRelations makes Matrix content a reply or an edit as the XMPP message
// is one; it returns the event an edit edits, or "". In a MUC, a reply
// names the room's stanza-id (XEP-0461); a correction names the id its
// sender gave the message (XEP-0308).
func (p *Portal) addRelations(ctx context.Context, x *other, msg *xmpp.Message, content *event.MessageEventContent) id.EventID {
	if msg.Replace != nil {
		row, err := p.deps.DB.Message.GetByStanzaID(ctx, p.RoomID, x.key, msg.Replace.ID)
		if err != nil || row == nil {
			msgconv.MarkUncorrected(content)
			return ""
		}
		orig := row.EventID
		if row.TargetEventID != "" {
			orig = row.TargetEventID
		}
		content.SetEdit(orig)
		return orig
	}
	if msg.Reply != nil && msg.Reply.ID != "" {
		if row := p.messageByRef(ctx, msg.Reply.ID); row != nil {
			target := row.EventID
			if row.TargetEventID != "" {
				target = row.TargetEventID
			}
			content.GetRelatesTo().SetReplyTo(target)
		}
	}
	return ""
}

// messageByRef finds the message an occupant refers to (a reply, a
// reaction, a retraction): by the room's stanza-id, as XEP-0461, XEP-0444
// and XEP-0424 want in a groupchat; in a room that gives none, by the id
// its sender gave it, which is all clients can name there.
func (p *Portal) messageByRef(ctx context.Context, ref string) *database.Message {
	row, err := p.deps.DB.Message.GetByRoomStanzaID(ctx, p.RoomID, ref)
	if err == nil && row == nil && !p.muc.StanzaIDs {
		row, err = p.deps.DB.Message.GetByAnyStanzaID(ctx, p.RoomID, ref)
	}
	if err != nil {
		p.log.Error().Err(err).Msg("Failed to look up a message")
		return nil
	}
	return row
}

// roomRef is the name the room's occupants know a message by: its room
// stanza-id, or in a room without those the id the room sent it with,
// which a MUC keeps the same for every occupant (XEP-0045 §7.4).
func (p *Portal) roomRef(msg *xmpp.Message, roomSID string) string {
	if roomSID == "" && !p.muc.StanzaIDs {
		return msg.ID
	}
	return roomSID
}

// refOf is how the room's occupants name a message: its room stanza-id,
// or in a room without those the id its sender gave it; "" if neither is
// known.
func (p *Portal) refOf(row *database.Message) string {
	if row.RoomStanzaID != "" {
		return row.RoomStanzaID
	}
	if !p.muc.StanzaIDs {
		return row.StanzaID
	}
	return ""
}

// handleSubject makes the MUC's subject the Matrix room's topic. The room
// sends its subject to every occupant that joins: only a change is a new
// topic.
func (p *Portal) handleSubject(ctx context.Context, nick, subject string) {
	if subject == p.info.Topic {
		return
	}
	actor := p.deps.Matrix.BotID()
	if x := p.others.get(nick); x != nil && x.onMatrix && p.info.PowerLevels.GetUserLevel(x.puppet) >= p.info.PowerLevels.GetEventLevel(event.StateTopic) {
		actor = x.puppet
	}
	if err := p.deps.Matrix.SetTopic(ctx, p.RoomID, actor, subject); err != nil {
		p.log.Warn().Err(err).Msg("Failed to set the MUC's subject as the room topic")
		return
	}
	p.info.Topic = subject
}

// handleBounce takes an error one of our messages came back with. The
// occupant joins again and the message goes out again once it is in: a
// room that no longer counts the occupant in says not-acceptable (XEP-0410
// §3.2: it removed it while the link was down); our own server says
// remote-server-not-found or -timeout while the room's server cannot be
// reached (joined again with backoff, without a limit); any other refusal
// may be our server's as it shuts down (delivery.go), and is tried again
// up to maxBounces times before the user is told in the room.
func (p *Portal) handleBounce(ctx context.Context, m *member, msg *xmpp.Message) {
	if m == nil {
		return
	}
	cond := "unknown error"
	if msg.Error != nil {
		cond = string(msg.Error.Condition)
		if text := errorText(msg.Error); text != "" {
			cond += ": " + text
		}
	}
	p.log.Info().Stringer("user_id", m.user).Str("condition", cond).Str("id", msg.ID).Msg("The MUC refused a message")
	original, known := m.sent.take(msg.ID)
	if original.bounces++; known && (unreachable(msg.Error) || original.bounces <= maxBounces) {
		if m.occ.State() == Joined {
			m.occ.Lost()
			p.lost()
			if unreachable(msg.Error) {
				p.rejoinLater(m)
			} else {
				p.apply(ctx, m, p.rejoin(m))
			}
		}
		if out := m.occ.SendOrdered(original.m, original.order); out.Notice == "" {
			p.log.Info().Str("id", msg.ID).Msg("Sending a refused message again once back in the MUC")
			m.sent.again(original)
			p.apply(ctx, m, out)
			return
		}
	}
	p.failed(roomloop.ToXMPP, "bounced")
	var replyTo id.EventID
	if strings.HasPrefix(msg.ID, "$") {
		replyTo = id.EventID(msg.ID)
	}
	p.notice(ctx, p.mention(m)+"not delivered to "+p.room.String()+" ("+cond+").", replyTo)
}

// sender sends the events of the room's XMPP stanzas exactly once.
func (p *Portal) sender() msgconv.Sender {
	return msgconv.Sender{DB: p.deps.DB, Matrix: p.deps.Matrix, RoomID: p.RoomID}
}
