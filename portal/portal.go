// Package portal bridges one Matrix room to one MUC on the component. Each
// portal owns a goroutine and a queue: everything that concerns the room,
// from either side, is handled there one event at a time, which keeps each
// room's messages in order while rooms run in parallel.
//
// It imports the leaf packages matrix, xmpp and database; they never import
// it. The calls it makes on each side go through MatrixAPI and XMPPAPI, so
// tests can use fakes.
package portal

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/rs/zerolog"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"github.com/mxpp/mxpp/database"
	"github.com/mxpp/mxpp/matrix"
	"github.com/mxpp/mxpp/msgconv"
	"github.com/mxpp/mxpp/ratelimit"
	"github.com/mxpp/mxpp/roomloop"
	"github.com/mxpp/mxpp/xmpp"
)

// MatrixAPI is what a portal does on Matrix. *matrix.Connector implements it.
type MatrixAPI interface {
	RoomInfo(ctx context.Context, roomID id.RoomID) (*matrix.RoomInfo, error)
	InDirectory(ctx context.Context, roomID id.RoomID) (bool, error)
	JoinPuppet(ctx context.Context, roomID id.RoomID, userID id.UserID, displayname string) error
	SetPuppetRoomName(ctx context.Context, roomID id.RoomID, userID id.UserID, displayname string) error
	Kick(ctx context.Context, roomID id.RoomID, actor, target id.UserID, reason string) error
	Ban(ctx context.Context, roomID id.RoomID, actor, target id.UserID, reason string) error
	Unban(ctx context.Context, roomID id.RoomID, actor, target id.UserID, reason string) error
	SetUserLevel(ctx context.Context, roomID id.RoomID, actor, target id.UserID, level int) error
	SetTopic(ctx context.Context, roomID id.RoomID, actor id.UserID, topic string) error
	Invite(ctx context.Context, roomID id.RoomID, actor, target id.UserID, reason string) error
	RecentMessages(ctx context.Context, roomID id.RoomID, asUser id.UserID, limit int) ([]*event.Event, error)
	History(ctx context.Context, roomID id.RoomID, asUser id.UserID, from string, backward bool, limit int) ([]*event.Event, string, error)
	EventContext(ctx context.Context, roomID id.RoomID, asUser id.UserID, eventID id.EventID) (before []*event.Event, beforeToken string, after []*event.Event, afterToken string, err error)
	GetEvent(ctx context.Context, roomID id.RoomID, eventID id.EventID) (*event.Event, error)
	Redact(ctx context.Context, roomID id.RoomID, actor id.UserID, eventID id.EventID, reason, txnID string) error
	SetTyping(ctx context.Context, roomID id.RoomID, userID id.UserID, typing bool) error
	UploadMedia(ctx context.Context, asUser id.UserID, data []byte, contentType, fileName string) (id.ContentURI, error)
	IsEncrypted(ctx context.Context, roomID id.RoomID) bool
	MarkRead(ctx context.Context, roomID id.RoomID, userID id.UserID, eventID id.EventID) error
	LeavePuppet(ctx context.Context, roomID id.RoomID, userID id.UserID, reason string) error
	ForgetRoom(ctx context.Context, roomID id.RoomID) error
	SendMessage(ctx context.Context, roomID id.RoomID, sender id.UserID, txnID string, evtType event.Type, content any, ts time.Time) (id.EventID, error)
	FindSent(ctx context.Context, roomID id.RoomID, sender id.UserID, txnID string) id.EventID
	SendNotice(ctx context.Context, roomID id.RoomID, text string, replyTo id.EventID) (id.EventID, error)
	PuppetID(remote string) id.UserID
	ParsePuppetID(userID id.UserID) (remote string, ok bool)
	IsBridgeUser(userID id.UserID) bool
	BotID() id.UserID
}

// XMPPAPI is what a portal does on XMPP. *xmpp.Component implements it.
type XMPPAPI interface {
	Send(ctx context.Context, v any) error
	SendIQ(ctx context.Context, iq *xmpp.IQ) (*xmpp.IQ, error)
	Reply(ctx context.Context, iq *xmpp.IQ, body any, serr *stanza.Error)
	WaitConnected(ctx context.Context) error
	Link() uint64
	LinkUp(link uint64) bool
}

var (
	_ MatrixAPI = (*matrix.Connector)(nil)
	_ XMPPAPI   = (*xmpp.Component)(nil)
	// Large shared files go into the upload as they download.
	_ msgconv.StreamUploader = (*matrix.Connector)(nil)
)

// Deps are the services every portal shares.
type Deps struct {
	// Permitted reports whether a Matrix user may use the bridge: the
	// typing and receipts of others do not cross (their other events never
	// reach the portal). Nil permits everyone.
	Permitted func(id.UserID) bool
	// MayInvite reports whether a Matrix user's invitation of a puppet may
	// send an XEP-0249 invitation to XMPP now (permission, rate limit).
	// Nil allows every one.
	MayInvite func(id.UserID) bool
	Matrix    MatrixAPI
	XMPP      XMPPAPI
	DB        *database.Database
	Scheme    xmpp.Scheme
	// HomeserverDomain is the server name of the bridged homeserver.
	HomeserverDomain string
	// OccupantIDKey keys the HMAC of XEP-0421 occupant ids.
	OccupantIDKey []byte
	// HistoryMessages bounds the history a joining session gets.
	HistoryMessages int
	// OccupantCheckInterval is how long a session may be quiet before a
	// liveness ping; zero turns the checks off.
	OccupantCheckInterval time.Duration
	// Avatars knows Matrix avatars' hashes; PuppetAvatars copies XMPP
	// users' avatars to their puppets. Either may be nil.
	Avatars       *Avatars
	PuppetAvatars *PuppetAvatars
	// MediaLinks makes links to Matrix media for XMPP; Fetcher fetches
	// files XMPP users share. Either may be nil, which turns that off.
	MediaLinks *msgconv.MediaLinks
	Fetcher    *msgconv.Fetcher
	// Policy is the bridge-wide XMPP domain policy; rooms may override it.
	Policy xmpp.DomainPolicy
	// HomeDomain is the XMPP server's own domain: joins from others are
	// audited.
	HomeDomain string
	// Banned reports whether a bare JID is banned from the whole bridge.
	Banned func(bare string) bool
	// MemberPresence adds a Matrix user's presence (show, status, idle
	// time) to their occupant presence; PuppetPresence tells the bridge
	// an XMPP occupant's show and status (online false: they left), for
	// their puppet's Matrix presence. Either may be nil.
	MemberPresence func(id.UserID, *xmpp.Presence)
	// Private carries an occupant's private message to a Matrix member
	// (private.go); nil refuses them.
	Private func(context.Context, PrivateMessage)
	// PrivateMoved tells the bridge that a member's occupant JID changed
	// (a new nick): their private chats follow it.
	PrivateMoved   func(ctx context.Context, user id.UserID, from, to jid.JID)
	PuppetPresence func(puppet id.UserID, show, status string, online bool)
	// Audit logs the events operators review (audit=true).
	Audit zerolog.Logger
	// IsCommand reports whether a message is a bot command, which is not
	// bridged.
	IsCommand func(body string) bool
	// Metrics counts what crosses; nil counts nothing.
	Metrics Metrics
	Log     zerolog.Logger
	// OnGone is called from the portal's goroutine when the room stopped
	// being reachable and the portal deleted itself.
	OnGone func(p *Portal)
	// OnMoved is called from the portal's goroutine when the room's MUC
	// moved to a new address (its canonical alias changed); oldLocal was
	// its MUC localpart.
	OnMoved func(p *Portal, oldLocal string)
}

// Metrics receives counts from portals (roomloop.Metrics).
type Metrics = roomloop.Metrics

// Directions of Metrics.
const (
	ToXMPP   = roomloop.ToXMPP
	ToMatrix = roomloop.ToMatrix
)

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

// linkWait is how long a send waits for the component link to come back.
// A Matrix event that could not be delivered in that time fails its
// appservice transaction, which the homeserver retries later; so it stays
// well below homeserver request timeouts (30 s in Dendrite).
const linkWait = 10 * time.Second

// Portal is one bridged room.
type Portal struct {
	*database.Portal
	// The room's goroutine and queues; Queue, Flush and the rest are its.
	*roomloop.Loop
	deps    *Deps // shared by every portal: not to be changed
	conv    *msgconv.Converter
	log     zerolog.Logger
	roomJID jid.JID

	// Owned by the loop goroutine.
	loaded    bool
	settings  *database.RoomSettings
	info      *matrix.RoomInfo
	listed    bool // in the room directory
	roster    *roster
	occupants map[string]*occupant // by bare JID
	// churn bounds, per bare JID, the joins and nick changes that write
	// membership and display-name events on Matrix (allowChurn). It, typing
	// and lastRead are made on first use: most of a large deployment's
	// rooms never need them, and each empty map costs a few hundred bytes.
	churn    *ratelimit.Keyed
	typing   map[id.UserID]bool // Matrix members typing now
	lastRead map[id.UserID]id.EventID
	late     roomloop.Lateness
	// fanout notes what a Matrix event's stanzas reached (partial.go).
	fanout sentStanzas

	// kind is what a room and a direct chat do differently (kind.go).
	kind kind
}

// New returns a portal for a stored row; Start runs it.
func New(row *database.Portal, deps *Deps) (*Portal, error) {
	roomJID, err := MUCJID(deps.Scheme, row.Alias)
	if err != nil {
		return nil, err
	}
	return newPortal(row, deps, roomJID), nil
}

func newPortal(row *database.Portal, deps *Deps, roomJID jid.JID) *Portal {
	p := &Portal{
		Portal: row,
		deps:   deps,
		conv:   &msgconv.Converter{MediaLinks: deps.MediaLinks, Fetcher: deps.Fetcher},
	}
	p.setRoomJID(roomJID)
	p.kind = muc{p}
	p.Loop = roomloop.New(p, p.log)
	if deps.Metrics != nil {
		p.Loop.Handled = func(evt any, d time.Duration) { deps.Metrics.Handled(roomloop.Kind(evt), d) }
	}
	return p
}

// Each XMPP user may join a room (as a new occupant) or change its nick in
// it churnBurst times at once, then once every churnEvery: each writes a
// membership or display-name event on Matrix. Beyond, the join or nick
// change gets resource-constraint (type wait).
const (
	churnBurst = 10
	churnEvery = 30 * time.Second
)

// setRoomJID sets the MUC address the portal answers at, and its logger.
func (p *Portal) setRoomJID(roomJID jid.JID) {
	p.roomJID = roomJID
	p.log = roomloop.WithFields(p.deps.Log, "room_id", string(p.RoomID), "muc", roomJID.String())
}

// allowChurn reports whether an XMPP user may join or change its nick now.
func (p *Portal) allowChurn(bare string) bool {
	if p.churn == nil {
		p.churn = ratelimit.New(churnEvery, churnBurst)
	}
	return p.churn.Allow(bare, time.Now())
}

// MUCJID returns the MUC JID of a Matrix room alias.
func MUCJID(scheme xmpp.Scheme, alias id.RoomAlias) (jid.JID, error) {
	local, server, ok := SplitAlias(alias)
	if !ok {
		return jid.JID{}, fmt.Errorf("%q is not a room alias", alias)
	}
	j, err := scheme.RoomJID(local, server)
	if err != nil {
		return jid.JID{}, fmt.Errorf("alias %s has no MUC JID: %w", alias, err)
	}
	return j, nil
}

// SplitAlias splits #local:server. The localpart of an alias cannot hold
// ':', while a server name can (a port).
func SplitAlias(alias id.RoomAlias) (local, server string, ok bool) {
	rest, ok := strings.CutPrefix(string(alias), "#")
	if !ok {
		return "", "", false
	}
	local, server, ok = strings.Cut(rest, ":")
	return local, server, ok && local != "" && server != ""
}

// RoomJID returns the bare JID of the portal's MUC.
func (p *Portal) RoomJID() jid.JID { return p.roomJID }

// Start runs the portal's loop until ctx ends or Stop is called.
func (p *Portal) Start(ctx context.Context) {
	p.Loop.Start(p.log.WithContext(ctx))
}

// Reconnected tells the portal that the component link came back.
type Reconnected struct{}

// HandleEvent implements roomloop.Handler: it handles one event of the
// room on the loop's goroutine, and returns false when the portal is gone.
func (p *Portal) HandleEvent(ctx context.Context, evt any) bool {
	if !p.loaded {
		if err := p.load(ctx); err != nil {
			p.log.Error().Err(err).Msg("Failed to load portal")
			p.rejectUnloaded(ctx, evt)
			return true
		}
	}
	p.noteSender(evt)
	switch e := evt.(type) {
	case *event.Event:
		p.fanout.begin(e.ID)
		defer func() { p.fanout.end(e.ID, p.Delivered()) }()
		return p.handleMatrixEvent(ctx, e)
	case *xmpp.Message:
		p.kind.onXMPPMessage(ctx, e)
	case mediaReady:
		p.handleMediaReady(ctx, e)
	case *xmpp.Presence:
		p.handleXMPPPresence(ctx, e)
	case *xmpp.IQ:
		p.handleXMPPIQ(ctx, e)
	case Reconnected:
		p.checkOccupants()
	case CheckQuiet:
		p.checkQuiet()
	case pingDone:
		p.handlePingDone(ctx, e)
	case archiveRead:
		p.answerArchive(ctx, e)
	case AvatarReady:
		p.handleAvatarReady(ctx, e.URI)
	case Unexpose, SettingsChanged, Remove, PresenceChanged, Moved:
		return p.kind.onControl(ctx, evt)
	default:
		p.log.Error().Type("event_type", evt).Msg("Unknown portal event")
	}
	return true
}

// load reads the room's state from the homeserver and the occupants from
// the database. Until it succeeds, the portal answers XMPP with errors.
func (p *Portal) load(ctx context.Context) error {
	info, err := p.deps.Matrix.RoomInfo(ctx, p.RoomID)
	if err != nil {
		return err
	}
	rows, err := p.deps.DB.Occupant.GetByRoom(ctx, p.RoomID)
	if err != nil {
		return fmt.Errorf("failed to load occupants: %w", err)
	}
	if p.settings, err = p.deps.DB.Settings.Get(ctx, p.RoomID); err != nil {
		return fmt.Errorf("failed to load room settings: %w", err)
	}
	p.info = info
	p.roster = newRoster()
	p.occupants = make(map[string]*occupant)
	p.typing, p.lastRead = nil, nil
	// XMPP occupants keep their nicks; Matrix members are fitted around them.
	for _, row := range rows {
		occ := p.occupants[row.UserJID]
		if occ == nil {
			bare, err := jid.Parse(row.UserJID)
			if err != nil {
				p.log.Warn().Err(err).Str("jid", row.UserJID).Msg("Dropping occupant with invalid JID")
				continue
			}
			occ = &occupant{bare: bare, nick: row.Nick, puppet: p.deps.Matrix.PuppetID(row.UserJID)}
			p.occupants[row.UserJID] = occ
			p.roster.claim(row.Nick, occ.puppet)
		}
		full, err := xmpp.ParseJID(row.FullJID)
		if err == nil {
			occ.join(full)
		}
	}
	p.kind.onLoad(ctx)
	for userID, m := range info.Members {
		if !p.deps.Matrix.IsBridgeUser(userID) {
			p.roster.set(userID, m.Displayname)
		}
	}
	p.loaded = true
	p.log.Debug().Int("members", len(info.Members)).Int("occupants", len(p.occupants)).Msg("Loaded portal")
	return nil
}

// rejectUnloaded answers an event when the room's state could not be read:
// an XMPP stanza with an error, so that the sender is not left waiting; a
// Matrix event by counting it undelivered.
func (p *Portal) rejectUnloaded(ctx context.Context, evt any) {
	serr := xmpp.StanzaError(stanza.RemoteServerTimeout, "The Matrix homeserver cannot be reached")
	switch e := evt.(type) {
	case *event.Event:
		// Not handled: the next Flush reports it, and the homeserver's
		// retry of its transaction brings it again.
		if e.ID != "" {
			p.DeliveryFailed()
		}
	default:
		p.refuse(ctx, evt, serr)
	}
}

// Refuse implements roomloop.Refuser: too much of a sender's waits behind
// the file it shared.
func (p *Portal) Refuse(ctx context.Context, st any) {
	p.refuse(ctx, st, xmpp.StanzaError(stanza.ResourceConstraint, "Too much of yours waits behind the file you shared; try again later"))
}

// refuse answers a stanza with an error (xmpp.ErrorReply), unless it is
// one that is never answered so.
func (p *Portal) refuse(ctx context.Context, st any, serr *stanza.Error) {
	if reply := xmpp.ErrorReply(st, serr); reply != nil {
		p.send(ctx, reply)
	}
}

// send writes stanzas to XMPP, waiting a while for the component link if it
// is down.
func (p *Portal) send(ctx context.Context, stanzas ...any) {
	for _, st := range stanzas {
		key := p.fanout.key(st)
		if p.fanout.reached(key, p.deps.XMPP.LinkUp) {
			continue // a retry: this session had it on the stream that is still up
		}
		link := p.deps.XMPP.Link()
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
			p.failed(ToXMPP, "xmpp_send")
			p.DeliveryFailed()
			continue
		}
		p.fanout.wentOut(key, link)
	}
}

// noteSender marks the session an XMPP stanza came from as alive.
func (p *Portal) noteSender(evt any) {
	var from jid.JID
	switch e := evt.(type) {
	case *xmpp.Message:
		from = e.From.JID
	case *xmpp.Presence:
		from = e.From.JID
	case *xmpp.IQ:
		from = e.From.JID
	default:
		return
	}
	p.touch(from)
}
