package remotemuc

import (
	"context"
	"encoding/xml"
	"fmt"
	"time"

	"github.com/rs/zerolog"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"github.com/mxpp/mxpp/database"
	"github.com/mxpp/mxpp/matrix"
	"github.com/mxpp/mxpp/msgconv"
	"github.com/mxpp/mxpp/roomloop"
	"github.com/mxpp/mxpp/xmpp"
)

// MatrixAPI is what a portal into a MUC hosted elsewhere does on Matrix.
// *matrix.Connector implements it.
type MatrixAPI interface {
	RoomInfo(ctx context.Context, roomID id.RoomID) (*matrix.RoomInfo, error)
	JoinPuppet(ctx context.Context, roomID id.RoomID, userID id.UserID, displayname string) error
	SetPuppetRoomName(ctx context.Context, roomID id.RoomID, userID id.UserID, displayname string) error
	LeavePuppet(ctx context.Context, roomID id.RoomID, userID id.UserID, reason string) error
	Kick(ctx context.Context, roomID id.RoomID, actor, target id.UserID, reason string) error
	SetUserLevel(ctx context.Context, roomID id.RoomID, actor, target id.UserID, level int) error
	Ban(ctx context.Context, roomID id.RoomID, actor, target id.UserID, reason string) error
	SetTopic(ctx context.Context, roomID id.RoomID, actor id.UserID, topic string) error
	GetEvent(ctx context.Context, roomID id.RoomID, eventID id.EventID) (*event.Event, error)
	SendMessage(ctx context.Context, roomID id.RoomID, sender id.UserID, txnID string, evtType event.Type, content any, ts time.Time) (id.EventID, error)
	FindSent(ctx context.Context, roomID id.RoomID, sender id.UserID, txnID string) id.EventID
	SendNotice(ctx context.Context, roomID id.RoomID, text string, replyTo id.EventID) (id.EventID, error)
	UploadMedia(ctx context.Context, asUser id.UserID, data []byte, contentType, fileName string) (id.ContentURI, error)
	Redact(ctx context.Context, roomID id.RoomID, actor id.UserID, eventID id.EventID, reason, txnID string) error
	SetTyping(ctx context.Context, roomID id.RoomID, userID id.UserID, typing bool) error
	MarkRead(ctx context.Context, roomID id.RoomID, userID id.UserID, eventID id.EventID) error
	IsEncrypted(ctx context.Context, roomID id.RoomID) bool
	PuppetID(remote string) id.UserID
	RoomPuppetID(room, token string) id.UserID
	IsBridgeUser(userID id.UserID) bool
	BotID() id.UserID
}

// XMPPAPI is what such a portal does on XMPP. *xmpp.Component implements
// it.
type XMPPAPI interface {
	Send(ctx context.Context, v any) error
	SendIQ(ctx context.Context, iq *xmpp.IQ) (*xmpp.IQ, error)
	WaitConnected(ctx context.Context) error
	// Link numbers the component's streams (xmpp.Component.Link).
	Link() uint64
}

var (
	_ MatrixAPI = (*matrix.Connector)(nil)
	_ XMPPAPI   = (*xmpp.Component)(nil)
)

// Resource is the one resource of every Matrix user's JID in MUCs hosted
// elsewhere: a user is one occupant, whatever devices it uses.
const Resource = "bridge"

// Deps are the services every portal into a MUC hosted elsewhere shares.
type Deps struct {
	Matrix MatrixAPI
	XMPP   XMPPAPI
	DB     *database.Database
	Conv   *msgconv.Converter
	// Scheme makes the JIDs of Matrix users on the component.
	Scheme xmpp.Scheme
	// ReactionKey keys the hashes that stand for reaction keys.
	ReactionKey []byte
	// HomeDomain is the XMPP server's own domain: joins to rooms elsewhere
	// are audited.
	HomeDomain string
	// Permitted reports whether a Matrix user may use the bridge; others
	// do not become occupants. Nil permits everyone.
	Permitted func(id.UserID) bool
	// MemberPresence adds a Matrix user's presence to their occupant's
	// presences; PuppetPresence tells the bridge another occupant's show
	// and status (online false: they left). Either may be nil.
	MemberPresence func(id.UserID, *xmpp.Presence)
	PuppetPresence func(puppet id.UserID, show, status string, online bool)
	// Private carries another occupant's private message to a Matrix
	// user's occupant (XEP-0045 §7.5) to a private chat between the
	// user, speaking from their occupant JID via, and the occupant's
	// puppet. Nil drops them.
	Private func(ctx context.Context, msg *xmpp.Message, user id.UserID, via jid.JID, puppet id.UserID)
	// PrivateMoved tells the bridge that another occupant was renamed:
	// private chats with them follow their new occupant JID.
	PrivateMoved func(ctx context.Context, from, to jid.JID)
	// IsCommand reports whether a message is a bot command, not bridged.
	IsCommand func(body string) bool
	// CheckInterval is how long the room may be quiet before each of our
	// occupants self-pings (XEP-0410); zero turns that off.
	CheckInterval time.Duration
	Audit         zerolog.Logger
	Metrics       roomloop.Metrics
	Log           zerolog.Logger
	// OnGone is called from the portal's goroutine when the portal ended
	// itself (the bot left the Matrix room) and deleted its row.
	OnGone func(p *Portal)
}

// linkWait is how long a send waits for the component link to come back
// before the Matrix event counts as undelivered.
const linkWait = 10 * time.Second

// infoTimeout bounds the disco#info query a portal asks the room when it
// loads: the first contact with a server elsewhere includes dialback.
const infoTimeout = 20 * time.Second

// Portal is one Matrix room whose Matrix members are occupants of a MUC
// hosted elsewhere, and whose other occupants are puppets on Matrix.
type Portal struct {
	*database.Portal
	*roomloop.Loop
	deps Deps
	log  zerolog.Logger
	room jid.JID

	// Owned by the loop goroutine.
	loaded bool
	info   *matrix.RoomInfo
	muc    xmpp.MUCInfo
	stored *database.RemoteRoom
	// members are the Matrix users of the room, each with its occupant.
	members map[id.UserID]*member
	// others are the room's other occupants, by nick.
	others *others
	// seen keeps the keys of the room's messages bridged lately: the room
	// sends each to every one of our occupants.
	seen *recent
	// took keeps the ids of our occupants' messages that the room's
	// history or archive shows and the message map lacks: sent before a
	// restart (kill -9) that came between the send and the mapping. When
	// the homeserver hands such an event again, it is mapped, not sent.
	took *recent
	// afterStart is set, for a portal from before this process started,
	// until its first rejoin of all (archive.go).
	afterStart bool
	// confirming is set from a rejoin of everyone until the first of ours
	// is back in: the puppets the room did not list again then leave, and
	// the catch-up from the room's archive starts.
	confirming bool
	// gap is set while none of our occupants is in the room after the
	// bridge was away or the room lost them: the next one in catches up.
	gap bool
	// gapHeld are live messages the room sent while none of ours was in
	// (it had not noticed yet): they wait for the catch-up, which starts
	// where the gap did, so that what the gap lost comes before them.
	gapHeld   []*xmpp.Message
	catching  *catchUp
	lastHeard time.Time
	late      roomloop.Lateness
	pinging   map[id.UserID]bool
	// awaited is the message of ours whose reflection a Matrix event that
	// refers to it waits for (waitForReflection).
	awaited id.EventID
}

// member is a Matrix user of the portal room and its occupant of the MUC.
type member struct {
	user        id.UserID
	displayname string
	occ         *Occupant
	// occupantID is the XEP-0421 id the room gives the occupant, learnt
	// from its self-presence.
	occupantID string
	// active is false once the room removed or refused the occupant for
	// good: it is not joined again until the user joins the Matrix room
	// again or changes its name.
	active bool
	// sent keeps the messages sent whose reflection has not come back
	// (delivery.go).
	sent *sentLog
	// link is the component stream the occupant joined on.
	link uint64
	// deferred holds the messages sent while the portal catches up: they
	// go out after it, behind what a broken link lost (delivery.go).
	deferred []sentMsg
	// rejoins counts the tries to get a lost occupant back in; told is
	// set once the user heard that it takes a while.
	rejoins int
	told    bool
	// typing and lastRead are what went to the room of the user's typing
	// and read receipts.
	typing   bool
	lastRead id.EventID
}

// New returns the portal of a stored row; Start runs it.
// processStart is when this process started (a variable for the tests).
var processStart = time.Now()

func New(row *database.Portal, deps Deps) (*Portal, error) {
	room, err := xmpp.ParseJID(row.RemoteJID)
	if err != nil || room.Localpart() == "" || room.Resourcepart() != "" {
		return nil, fmt.Errorf("portal %s: invalid MUC JID %q", row.RoomID, row.RemoteJID)
	}
	p := &Portal{
		Portal: row,
		deps:   deps,
		log:    roomloop.WithFields(deps.Log, "room_id", string(row.RoomID), "remote_muc", room.String()),
		room:   room,
		seen:   newRecent(4096),
		took:   newRecent(256),

		// Only a portal that existed before this process started can
		// have messages that an earlier process sent and did not map.
		afterStart: row.CreatedAt.Before(processStart),
	}
	p.Loop = roomloop.New(p, p.log)
	// Every stanza comes from the room: its occupants are told apart by
	// their full JIDs (room/nick).
	p.Loop.SenderKey = func(st any) string {
		switch s := st.(type) {
		case *xmpp.Message:
			return s.From.String()
		case *xmpp.Presence:
			return s.From.String()
		}
		return ""
	}
	if deps.Metrics != nil {
		p.Loop.Handled = func(evt any, d time.Duration) { deps.Metrics.Handled(roomloop.Kind(evt), d) }
	}
	return p, nil
}

// RoomJID returns the bare JID of the portal's MUC.
func (p *Portal) RoomJID() jid.JID { return p.room }

// Start runs the portal's loop until ctx ends or Stop is called.
func (p *Portal) Start(ctx context.Context) {
	p.Loop.Start(p.log.WithContext(ctx))
}

// Events a portal into a MUC hosted elsewhere handles, besides
// *event.Event and the xmpp stanza types.
type (
	// Reconnected tells the portal that the component link came back (or
	// the bridge started): every occupant joins again.
	Reconnected struct{}
)

// HandleEvent implements roomloop.Handler.
func (p *Portal) HandleEvent(ctx context.Context, evt any) bool {
	if !p.loaded {
		if err := p.load(ctx); err != nil {
			p.log.Error().Err(err).Msg("Failed to load portal")
			if e, ok := evt.(*event.Event); ok && e.ID != "" {
				p.DeliveryFailed()
			}
			return true
		}
	}
	switch e := evt.(type) {
	case *event.Event:
		return p.handleMatrixEvent(ctx, e)
	case *xmpp.Presence:
		p.handleXMPPPresence(ctx, e)
	case *xmpp.Message:
		p.handleXMPPMessage(ctx, e)
	case *xmpp.IQ:
		p.handleXMPPIQ(ctx, e)
	case mediaReady:
		p.handleMediaReady(ctx, e)
	case Reconnected:
		p.rejoinAll(ctx)
	case rejoinDue:
		p.handleRejoinDue(ctx, e)
	case archivePageDone:
		p.handleArchivePage(ctx, e)
	case historyDone:
		if c := p.catching; c != nil && c.history && c.queryID == e.queryID {
			p.log.Info().Msg("The MUC sent no subject after its history in time; going on")
			p.endCatchUp(ctx)
		}
	case CheckQuiet:
		p.checkQuiet()
	case selfPingDone:
		p.handleSelfPing(ctx, e)
	case moderationDone:
		p.handleModerationDone(ctx, e)
	case removalDone:
		p.handleRemovalDone(ctx, e)
	case PresenceChanged:
		p.handlePresenceChanged(ctx, e.User)
	default:
		p.log.Error().Type("event_type", evt).Msg("Unknown portal event")
	}
	return true
}

// load reads the room's state from the homeserver, what the database keeps
// of it, and what the MUC says of itself; then every Matrix member joins.
func (p *Portal) load(ctx context.Context) error {
	info, err := p.deps.Matrix.RoomInfo(ctx, p.RoomID)
	if err != nil {
		return err
	}
	stored, err := p.deps.DB.RemoteRoom.Get(ctx, p.RoomID)
	if err != nil {
		return fmt.Errorf("failed to load the room's row: %w", err)
	}
	occs, err := p.deps.DB.RemoteOccupant.GetByRoom(ctx, p.RoomID)
	if err != nil {
		return fmt.Errorf("failed to load occupants: %w", err)
	}
	puppets, err := p.deps.DB.RoomPuppet.GetByRoom(ctx, p.RoomID)
	if err != nil {
		return fmt.Errorf("failed to load room puppets: %w", err)
	}
	p.info, p.stored = info, stored
	p.members = map[id.UserID]*member{}
	p.others = newOthers(puppets)
	p.pinging = map[id.UserID]bool{}
	p.heard()
	p.muc = p.queryInfo(ctx)
	known := map[id.UserID]*database.RemoteOccupant{}
	for _, o := range occs {
		known[o.UserID] = o
	}
	p.loaded = true
	for userID, m := range info.Members {
		if p.deps.Matrix.IsBridgeUser(userID) {
			continue
		}
		mem := p.addMember(userID, m.Displayname)
		if row := known[userID]; row != nil {
			mem.active = row.Active
			mem.occ.Resume(row.Nick)
		}
	}
	p.log.Debug().Int("members", len(p.members)).Int("room_puppets", len(puppets)).Bool("non_anonymous", p.muc.NonAnonymous).
		Bool("stanza_ids", p.muc.StanzaIDs).Bool("occupant_ids", p.muc.OccupantIDs).Msg("Loaded portal into a MUC hosted elsewhere")
	return nil
}

// queryInfo asks the room what it is. A room that does not answer is
// taken to be semi-anonymous, without stanza-ids or occupant-ids: what the
// bridge then trusts least.
func (p *Portal) queryInfo(ctx context.Context) xmpp.MUCInfo {
	qctx, cancel := context.WithTimeout(ctx, infoTimeout)
	defer cancel()
	info, err := QueryRoom(qctx, p.deps.XMPP, p.deps.Scheme.Domain, p.room)
	if err != nil {
		p.log.Warn().Err(err).Msg("The MUC did not say what it is; trusting none of its ids")
		return xmpp.MUCInfo{IsMUC: true}
	}
	return info
}

// QueryRoom asks a MUC for its disco#info (XEP-0045 §6.4), from the
// component's domain.
func QueryRoom(ctx context.Context, x XMPPAPI, from, room jid.JID) (xmpp.MUCInfo, error) {
	reply, err := x.SendIQ(ctx, &xmpp.IQ{Type: xmpp.TypeGet, From: xmpp.A(from), To: xmpp.A(room), Body: discoInfoQuery{}})
	if err != nil {
		return xmpp.MUCInfo{}, err
	}
	var info xmpp.DiscoInfo
	if err = reply.Payload.Decode(&info); err != nil {
		return xmpp.MUCInfo{}, fmt.Errorf("undecodable disco#info from %s: %w", room, err)
	}
	return xmpp.ReadMUCInfo(&info), nil
}

type discoInfoQuery struct {
	XMLName xml.Name `xml:"http://jabber.org/protocol/disco#info query"`
}

// addMember adds a Matrix user of the room with an occupant that is out.
func (p *Portal) addMember(userID id.UserID, displayname string) *member {
	local, server, _ := userID.Parse()
	bare, err := p.deps.Scheme.UserJID(local, server)
	if err != nil {
		p.log.Warn().Err(err).Stringer("user_id", userID).Msg("A Matrix user of the room has no JID")
	}
	full, _ := bare.WithResource(Resource)
	m := &member{user: userID, displayname: displayname, active: true, sent: &sentLog{},
		occ: NewOccupant(p.room, full, xmpp.NickCandidates(displayname, local))}
	p.members[userID] = m
	return m
}

// send writes stanzas to XMPP, waiting a while for the component link if
// it is down. It reports whether all went out; a Matrix event being
// handled counts as undelivered otherwise.
func (p *Portal) send(ctx context.Context, stanzas ...any) bool {
	ok := true
	for _, st := range stanzas {
		err := p.deps.XMPP.Send(ctx, st)
		if err == xmpp.ErrNotConnected {
			wctx, cancel := context.WithTimeout(ctx, linkWait)
			if err = p.deps.XMPP.WaitConnected(wctx); err == nil {
				err = p.deps.XMPP.Send(ctx, st)
			}
			cancel()
		}
		if err != nil {
			p.log.Error().Err(err).Msg("Failed to send stanza to XMPP")
			p.failed(roomloop.ToXMPP, "xmpp_send")
			p.DeliveryFailed()
			ok = false
		}
	}
	return ok
}

// notice tells the room's Matrix members something, as the bot; replyTo
// may name the event it is about.
func (p *Portal) notice(ctx context.Context, text string, replyTo id.EventID) {
	if text == "" {
		return
	}
	if _, err := p.deps.Matrix.SendNotice(ctx, p.RoomID, text, replyTo); err != nil {
		p.log.Warn().Err(err).Msg("Failed to send a notice to the room")
	}
}

// apply carries out an occupant's outcome: its stanzas, and its notice for
// the user.
func (p *Portal) apply(ctx context.Context, m *member, out Outcome) {
	if p.deps.MemberPresence != nil {
		for _, st := range out.Send {
			if pres, ok := st.(*xmpp.Presence); ok && pres.Type == "" {
				p.deps.MemberPresence(m.user, pres)
			}
		}
	}
	p.send(ctx, out.Send...)
	m.sent.wentOut(out.Send, p.deps.XMPP.Link())
	if out.Notice != "" {
		p.notice(ctx, p.mention(m)+out.Notice, "")
	}
}

// occSend sends a member's message to the room through its occupant.
// An occupant that joined on an earlier stream of the component may no
// longer be in the room (services remove occupants whose stanzas bounced
// while the component was away): it joins again first, and the message
// waits for that, so that messages keep their order.
func (p *Portal) occSend(ctx context.Context, m *member, msg *xmpp.Message, order int64) Outcome {
	// A send waits a while for a link that is down, and then knows
	// whether it is a new one.
	wctx, cancel := context.WithTimeout(ctx, linkWait)
	_ = p.deps.XMPP.WaitConnected(wctx)
	cancel()
	if m.occ.State() == Joined && m.link != p.deps.XMPP.Link() {
		m.occ.Lost()
		p.lost()
		p.apply(ctx, m, p.rejoin(m))
	}
	if p.catching != nil && m.occ.State() == Joined && msg.ID != "" {
		m.deferred = append(m.deferred, sentMsg{m: msg, order: order})
		return Outcome{}
	}
	return m.occ.SendOrdered(msg, order)
}

// mention starts a notice about a member with the member's name.
func (p *Portal) mention(m *member) string {
	if m.displayname != "" {
		return m.displayname + ": "
	}
	return m.user.String() + ": "
}

func (p *Portal) bridged(direction, kind string) {
	if p.deps.Metrics != nil {
		p.deps.Metrics.Bridged(direction, kind)
	}
}

func (p *Portal) failed(direction, reason string) {
	if p.deps.Metrics != nil {
		p.deps.Metrics.Failed(direction, reason)
	}
}

// permitted reports whether a Matrix user may use the bridge.
func (p *Portal) permitted(u id.UserID) bool { return p.deps.Permitted == nil || p.deps.Permitted(u) }

// handleXMPPIQ answers what the room, or someone through it, asks of one
// of our occupants. An error here is allowed (XEP-0045 kicks only for
// errors to messages and presences), but the answer is one a client
// gives.
func (p *Portal) handleXMPPIQ(ctx context.Context, iq *xmpp.IQ) {
	p.heard()
	if iq.Type != xmpp.TypeGet && iq.Type != xmpp.TypeSet {
		return
	}
	reply := func(body any, serr *stanza.Error) {
		out := &xmpp.IQ{ID: iq.ID, Type: xmpp.TypeResult, From: iq.To, To: iq.From, Body: body}
		if serr != nil {
			out.Type, out.Body, out.Error = xmpp.TypeError, nil, serr
		}
		p.send(ctx, out)
	}
	switch iq.Payload.XMLName.Space {
	case xmpp.NSPing:
		reply(nil, nil)
	case xmpp.NSDiscoInfo:
		reply(&xmpp.DiscoInfo{
			Identities: []xmpp.DiscoIdentity{{Category: "client", Type: "bot", Name: "Matrix user (mxpp)"}},
			Features:   xmpp.Features(xmpp.NSDiscoInfo, xmpp.NSPing, xmpp.NSMUC),
		}, nil)
	default:
		reply(nil, xmpp.StanzaError(stanza.ServiceUnavailable, ""))
	}
}
