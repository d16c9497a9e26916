package bridge

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"github.com/mxpp/mxpp/database"
	"github.com/mxpp/mxpp/matrix"
	"github.com/mxpp/mxpp/msgconv"
	"github.com/mxpp/mxpp/remotemuc"
	"github.com/mxpp/mxpp/xmpp"
)

// roomPortal is a running portal of either kind: a room the component
// hosts (or a direct chat), *portal.Portal, or a portal into a MUC hosted
// elsewhere, *remotemuc.Portal.
type roomPortal interface {
	Queue(ctx context.Context, evt any) bool
	QueueXMPP(st any) bool
	TryQueue(evt any) bool
	Flush(ctx context.Context, events ...id.EventID) ([]id.EventID, error)
	Drain(ctx context.Context) ([]id.EventID, error)
	Stop()
	QueueLen() int
	Row() *database.Portal
}

var _ matrix.RoomAliasCreator = (*Bridge)(nil)

// startRemote runs the portal of a row into a MUC hosted elsewhere, or
// returns the one already running.
func (b *Bridge) startRemote(row *database.Portal) (*remotemuc.Portal, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if p := b.byRoom[row.RoomID]; p != nil {
		if remote, ok := p.(*remotemuc.Portal); ok {
			return remote, nil
		}
		return nil, fmt.Errorf("room %s runs a portal of another kind", row.RoomID)
	}
	p, err := remotemuc.New(row, remotemuc.Deps{
		Matrix:      b.Matrix,
		XMPP:        b.XMPP,
		DB:          b.DB,
		Conv:        &msgconv.Converter{MediaLinks: b.mediaLinks, Fetcher: b.fetcher},
		Scheme:      b.scheme,
		ReactionKey: b.occupantIDKey,
		HomeDomain:  homeDomain(b.XMPP.Domain().String()),
		Permitted:   b.permitted,
		IsCommand:   b.isCommand,
		Audit:       b.Audit,

		MemberPresence: b.memberPresence,
		PuppetPresence: b.occupantPresence,
		Private:        b.remotePrivate,
		PrivateMoved:   b.peerMoved,

		CheckInterval: b.Config.Bridge.OccupantCheckInterval,
		Metrics:       b.portalMetrics(),
		Log:           b.Log.With().Str("component", "remote_portal").Logger(),
		OnGone:        func(p *remotemuc.Portal) { b.forgetPortal(p) },
	})
	if err != nil {
		return nil, err
	}
	b.byRoom[row.RoomID] = p
	b.byRemote[row.RemoteJID] = p
	p.Start(b.ctx)
	return p, nil
}

// remoteByJID returns the running portal into a MUC hosted elsewhere,
// starting it from the database if needed, or nil if the bridge has none.
func (b *Bridge) remoteByJID(ctx context.Context, room jid.JID) (*remotemuc.Portal, error) {
	b.mu.Lock()
	p := b.byRemote[room.String()]
	b.mu.Unlock()
	if p != nil {
		return p, nil
	}
	row, err := b.DB.Portal.GetByRemoteJID(ctx, room.String())
	if err != nil || row == nil {
		return nil, err
	}
	return b.startRemote(row)
}

// routeRemote hands a stanza from a MUC hosted elsewhere to one of our
// occupants to the MUC's portal, and reports whether there is one. Such
// traffic is never answered with an error (a MUC removes occupants that
// bounce its stanzas); a vCard request through the room is answered as for
// any Matrix user.
func (b *Bridge) routeRemote(ctx context.Context, st any, from jid.JID, user id.UserID, server string) bool {
	p, err := b.remoteByJID(ctx, from.Bare())
	if err != nil {
		zerolog.Ctx(ctx).Error().Err(err).Msg("Failed to look up a portal into a MUC hosted elsewhere")
	}
	if p == nil {
		return b.staleMUCTraffic(ctx, st)
	}
	if iq, ok := st.(*xmpp.IQ); ok && iq.Payload.XMLName.Space == xmpp.NSVCard {
		b.routeDirect(ctx, st, user, server)
		return true
	}
	if !p.QueueXMPP(st) {
		if _, ok := st.(*xmpp.IQ); ok {
			b.reject(ctx, st, stanza.ResourceConstraint, "Busy; try again later")
		} else {
			zerolog.Ctx(ctx).Warn().Stringer("from", from).Msg("Dropping a stanza from a MUC hosted elsewhere: its portal is too far behind")
		}
	}
	return true
}

// staleMUCTraffic handles what a MUC the bridge has no portal for sends to
// a Matrix user's JID (the portal was closed while the room still counted
// the user in): no error, which the room would punish, and a leave for its
// presence. It reports false for a stanza that is not MUC traffic.
func (b *Bridge) staleMUCTraffic(ctx context.Context, st any) bool {
	switch s := st.(type) {
	case *xmpp.Message:
		if s.Type != xmpp.TypeGroupchat && s.MUCUser == nil {
			return false
		}
		zerolog.Ctx(ctx).Debug().Stringer("from", s.From).Msg("Ignoring a groupchat message for an occupant the bridge no longer has")
		return true
	case *xmpp.Presence:
		if s.MUCUser == nil || s.From.Resourcepart() == "" {
			return false
		}
		if s.Type == "" && s.HasStatus(xmpp.StatusSelf) {
			zerolog.Ctx(ctx).Info().Stringer("from", s.From).Msg("Leaving a MUC the bridge has no portal for")
			b.send(ctx, &xmpp.Presence{Type: xmpp.TypeUnavailable, From: s.To, To: s.From})
		}
		return true
	}
	return false
}

// Errors of openRemote, for the bot and the alias query.
var (
	errRemoteOwnDomain = errors.New("that is a room of this bridge itself: join it by its Matrix alias")
	errRemoteNotMUC    = errors.New("that address is not a groupchat (it does not say it speaks MUC)")
	errRemoteClosed    = errors.New("that room is members-only or needs a password: open it with the bot's join command")
)

// remoteOpening serialises the opening of portals, one room at a time.
var remoteOpening sync.Map // room JID -> *sync.Mutex

// Each Matrix user may open newPortalBurst portals into MUCs hosted
// elsewhere at once, then one every newPortalEvery; alias queries, which
// name nobody, share one such allowance. Each portal is a Matrix room and
// a disco#info to a server elsewhere.
const (
	newPortalBurst = 20
	newPortalEvery = time.Minute
)

// openRemote finds or creates the portal into a MUC hosted elsewhere.
// opener is the Matrix user who asked ("" for an alias query, which names
// nobody); password is for a room that needs one.
func (b *Bridge) openRemote(ctx context.Context, room jid.JID, opener id.UserID, password string) (*database.Portal, error) {
	room = room.Bare()
	if room.Localpart() == "" {
		return nil, fmt.Errorf("%s is a service, not a room: give room@%s", room, room.Domainpart())
	}
	domain := room.Domainpart()
	if own := b.XMPP.Domain().Domainpart(); domain == own || strings.HasSuffix(domain, "."+own) {
		return nil, errRemoteOwnDomain
	}
	if !b.policy.Allows(domain) {
		return nil, fmt.Errorf("rooms on %s are not allowed on this bridge", domain)
	}
	if opener == "" || !b.Config.hasLevel(opener, LevelAdmin) {
		if !b.userMayOpen(domain) {
			return nil, fmt.Errorf("only bridge admins may open rooms on %s", domain)
		}
	}
	lock, _ := remoteOpening.LoadOrStore(room.String(), &sync.Mutex{})
	lock.(*sync.Mutex).Lock()
	defer func() {
		lock.(*sync.Mutex).Unlock()
		remoteOpening.CompareAndDelete(room.String(), lock)
	}()
	if row, err := b.DB.Portal.GetByRemoteJID(ctx, room.String()); err != nil || row != nil {
		if row != nil && password != "" {
			err = b.DB.RemoteRoom.SetPassword(ctx, row.RoomID, password)
		}
		return row, err
	}
	if !b.newPortals.Allow(opener.String(), time.Now()) {
		b.Audit.Info().Str("action", "open_remote").Stringer("muc", room).Str("by", opener.String()).
			Str("result", "refused").Str("reason", "rate").Msg("Refused to open another portal into a MUC hosted elsewhere")
		return nil, errors.New("too many new portals were opened; try again in a minute")
	}
	qctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	info, err := remotemuc.QueryRoom(qctx, b.XMPP, b.XMPP.Domain(), room)
	cancel()
	if err != nil {
		return nil, remoteQueryError(room, err)
	}
	switch {
	case !info.IsMUC:
		return nil, errRemoteNotMUC
	case opener == "" && (info.MembersOnly || info.Password):
		return nil, errRemoteClosed
	}
	alias := b.Matrix.RemoteRoomAlias(room.String())
	name := info.Name
	if name == "" {
		name = room.String()
	}
	var invite []id.UserID
	if opener != "" {
		invite = []id.UserID{opener}
	}
	roomID, err := b.Matrix.CreatePortalRoom(ctx, matrix.PortalRoom{
		AliasLocalpart: strings.TrimPrefix(strings.TrimSuffix(alias.String(), ":"+b.Config.Homeserver.Domain), "#"),
		Name:           name,
		Topic:          info.Description,
		Public:         !info.MembersOnly && !info.Password,
		Federate:       b.Config.Bridge.RemoteRooms.Federate,
		BridgeStateKey: "xmpp://" + room.String(),
		BridgeState: b.bridgeInfo(event.BridgeInfoSection{ID: room.String(), DisplayName: name, ExternalURL: xmpp.URI(room, "join")},
			opener, false),
		Invite: invite,
	})
	if err != nil {
		return nil, err
	}
	row := database.NewRemote(roomID, alias, room.String())
	if err = b.DB.Portal.Insert(ctx, row); err != nil {
		return nil, fmt.Errorf("failed to store the portal: %w", err)
	}
	if err = b.DB.RemoteRoom.SetPassword(ctx, roomID, password); err != nil {
		return nil, fmt.Errorf("failed to store the portal: %w", err)
	}
	by := opener.String()
	if opener == "" {
		by = "alias query"
	}
	b.Audit.Info().Str("action", "open_remote").Stringer("muc", room).Stringer("room_id", roomID).Str("by", by).
		Str("result", "created").Msg("Opened a portal into a MUC hosted elsewhere")
	if _, err = b.startRemote(row); err != nil {
		return nil, err
	}
	return row, nil
}

// userMayOpen reports whether users of level user may open rooms on a MUC
// service (bridge.remote_rooms.user_domains).
func (b *Bridge) userMayOpen(domain string) bool {
	allowed := b.Config.Bridge.RemoteRooms.UserDomains
	if len(allowed) == 0 {
		return true
	}
	for _, pat := range allowed {
		if xmpp.MatchDomain(pat, domain) {
			return true
		}
	}
	return false
}

// remoteQueryError says why a room's disco#info failed.
func remoteQueryError(room jid.JID, err error) error {
	var serr stanza.Error
	switch {
	case errors.As(err, &serr) && serr.Condition == stanza.ItemNotFound:
		return fmt.Errorf("there is no room %s (the bridge never creates rooms)", room)
	case errors.As(err, &serr) && (serr.Condition == stanza.RemoteServerNotFound || serr.Condition == stanza.RemoteServerTimeout):
		return fmt.Errorf("the XMPP server of %s cannot be reached (%s)", room, serr.Condition)
	case errors.As(err, &serr):
		return fmt.Errorf("%s refused to describe itself (%s)", room, serr.Condition)
	case errors.Is(err, xmpp.ErrNoReply), errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("%s did not answer in time", room)
	}
	return fmt.Errorf("cannot ask %s what it is: %w", room, err)
}

// CreateAliasRoom implements matrix.RoomAliasCreator: the alias of a MUC
// hosted elsewhere (#_xmpp_<room JID>:<homeserver>) gets its portal room.
// The query names no user: only domains plain users may open are served,
// and open rooms only; whether the user who joins may use the bridge is
// decided when they join.
func (b *Bridge) CreateAliasRoom(ctx context.Context, alias id.RoomAlias) bool {
	log := b.Log.With().Stringer("alias", alias).Logger()
	room, ok := b.Matrix.ParseRemoteRoomAlias(alias)
	if !ok {
		return false
	}
	j, err := xmpp.ParseJID(room)
	if err != nil || j.Localpart() == "" || j.Resourcepart() != "" {
		log.Debug().Msg("Alias query for an address that is not a room JID")
		return false
	}
	row, err := b.openRemote(ctx, j, "", "")
	if err != nil {
		log.Info().Err(err).Msg("Not creating a portal for an alias query")
		return false
	}
	// The homeserver resolves the alias it asked about: the room must have
	// it, whatever case the user typed.
	return row.Alias == alias || strings.EqualFold(row.Alias.String(), alias.String())
}

// cmdJoin opens (or finds) the portal into a MUC hosted elsewhere and
// invites the sender.
func (b *Bridge) cmdJoin(ctx context.Context, e *cmdEnv) (string, error) {
	if len(e.args) < 1 || len(e.args) > 2 {
		return "", errUsage
	}
	room, query, err := xmpp.ParseURI(e.args[0])
	if err != nil || query != "" && !strings.HasPrefix(query, "join") {
		room, err = xmpp.ParseJID(strings.TrimPrefix(e.args[0], "xmpp:"))
	}
	if err != nil || room.Resourcepart() != "" {
		return fmt.Sprintf("%q is not a room address; give room@service or an xmpp: link.", e.args[0]), nil
	}
	password := ""
	if p := uriPassword(query); p != "" {
		password = p
	}
	if len(e.args) == 2 {
		password = e.args[1]
	}
	if password != "" && e.event != "" {
		defer b.removePasswordMessage(ctx, e)
	}
	row, err := b.openRemote(ctx, room, e.sender, password)
	if err != nil {
		return fmt.Sprintf("Cannot join %s: %s.", room, err), nil
	}
	joined, _ := b.Matrix.IsJoined(ctx, row.RoomID, e.sender)
	if joined {
		return fmt.Sprintf("You are in %s already: %s", room, row.Alias), nil
	}
	if err = b.Matrix.Invite(ctx, row.RoomID, b.Matrix.BotID(), e.sender, "Portal into "+room.String()); err != nil &&
		!strings.Contains(err.Error(), "already") {
		zerolog.Ctx(ctx).Warn().Err(err).Msg("Failed to invite a user to a portal room")
		return fmt.Sprintf("The portal into %s is %s, but the bot could not invite you; join it by its alias.", room, row.Alias), nil
	}
	return fmt.Sprintf("Invited you to %s, the portal into %s. Accept the invitation to join the groupchat.", row.Alias, room), nil
}

// uriPassword returns the password of an xmpp: URI's join query
// (XEP-0147: ?join;password=…), or "".
func uriPassword(query string) string {
	for _, part := range strings.Split(query, ";") {
		if v, ok := strings.CutPrefix(part, "password="); ok {
			return v
		}
	}
	return ""
}

// removePasswordMessage redacts the command that carried a password, so
// that it does not stay in the chat's history.
func (b *Bridge) removePasswordMessage(ctx context.Context, e *cmdEnv) {
	if err := b.Matrix.Redact(ctx, e.room, b.Matrix.BotID(), e.event, "It held a password", ""); err != nil {
		zerolog.Ctx(ctx).Info().Err(err).Msg("Failed to remove a command that held a password")
		if _, err = b.Matrix.SendNotice(ctx, e.room, "Your command held a password and the bot cannot delete it here: delete it yourself.", e.event); err != nil {
			zerolog.Ctx(ctx).Warn().Err(err).Msg("Failed to ask for a password message to be deleted")
		}
	}
}
