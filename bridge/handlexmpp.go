package bridge

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"github.com/mxpp/mxpp/database"
	"github.com/mxpp/mxpp/portal"
	"github.com/mxpp/mxpp/xmpp"
)

// HandleMessage implements xmpp.Handler.
func (b *Bridge) HandleMessage(ctx context.Context, m *xmpp.Message) {
	b.route(ctx, m, m.To.JID, m.From.JID)
}

// HandlePresence implements xmpp.Handler.
func (b *Bridge) HandlePresence(ctx context.Context, p *xmpp.Presence) {
	b.route(ctx, p, p.To.JID, p.From.JID)
}

// HandleIQ implements xmpp.Handler.
func (b *Bridge) HandleIQ(ctx context.Context, iq *xmpp.IQ) { b.route(ctx, iq, iq.To.JID, iq.From.JID) }

// route finds where a stanza goes: the component itself, a Matrix user, or
// a room. A room without a running portal is looked up on Matrix first, but
// only for stanzas that may create one (joins and IQs).
func (b *Bridge) route(ctx context.Context, st any, to, from jid.JID) {
	log := b.Log.With().Stringer("to", to).Stringer("from", from).Logger()
	if from.Equal(jid.JID{}) {
		log.Debug().Msg("Dropping stanza without sender")
		return
	}
	if !b.policy.Allows(from.Domainpart()) && !harmless(st, to) {
		b.Audit.Info().Str("action", "stanza").Stringer("jid", from).Stringer("to", to).Str("result", "refused").
			Msg("Refused a stanza from a domain that is not allowed")
		b.reject(ctx, st, stanza.Forbidden, "Your server is not allowed to use this bridge")
		return
	}
	if to.Localpart() == "" {
		b.handleServiceStanza(ctx, st)
		return
	}
	if local, server, err := b.scheme.ParseUserJID(to); err == nil && from.Localpart() != "" {
		// A MUC hosted elsewhere, to one of our occupants.
		if b.routeRemote(ctx, st, from, id.NewUserID(local, server), server) {
			return
		}
	}
	if b.Config.Bridge.Exposure == ExposureOff {
		b.answerWithoutPortal(ctx, st)
		return
	}
	_, server, err := b.scheme.ParseRoomJID(to)
	if err != nil {
		if local, server, uerr := b.scheme.ParseUserJID(to); uerr == nil {
			b.routeDirect(ctx, st, id.NewUserID(local, server), server)
		} else {
			b.reject(ctx, st, stanza.ItemNotFound, "There is no such room or user on this bridge")
		}
		return
	}
	if costly(st) && !b.allowLookup(from) {
		b.reject(ctx, st, stanza.ResourceConstraint, "Too many requests; try again later")
		return
	}
	local := to.Localpart()
	p, err := b.portalByMUC(ctx, local)
	if err != nil {
		log.Error().Err(err).Msg("Failed to look up portal")
		b.reject(ctx, st, stanza.InternalServerError, "")
		return
	}
	if p != nil {
		b.queueXMPP(ctx, p, st)
		return
	}
	if !createsPortal(st) {
		b.answerWithoutPortal(ctx, st)
		return
	}
	if server != b.Config.Homeserver.Domain {
		b.reject(ctx, st, stanza.ItemNotFound, "Only rooms of "+b.Config.Homeserver.Domain+" are bridged here")
		return
	}
	// A room without a portal costs homeserver requests to look up: the
	// sender's and its domain's lookups bound them, and a name that was
	// not found a moment ago is not looked up again.
	if b.misses.has(local, time.Now()) {
		b.reject(ctx, st, stanza.ItemNotFound, "There is no such room")
		return
	}
	if !costly(st) && !b.allowLookup(from) {
		b.reject(ctx, st, stanza.ResourceConstraint, "Too many requests; try again later")
		return
	}
	if iq, ok := st.(*xmpp.IQ); ok && iq.Payload.XMLName.Space == xmpp.NSDiscoInfo && to.Resourcepart() == "" {
		// Browsing the room list must not make the bot join every room:
		// rooms in the directory are described from it.
		if !b.goListing(func() { b.roomInfoWithoutPortal(ctx, iq, local) }) {
			b.reject(ctx, st, stanza.ResourceConstraint, "Too many requests; try again later")
		}
		return
	}
	b.lookupRoom(ctx, local, st)
}

// queueXMPP hands a stanza to its room without waiting; a room too far
// behind makes the sender retry later.
func (b *Bridge) queueXMPP(ctx context.Context, p *portal.Portal, st any) {
	if !p.QueueXMPP(st) {
		b.reject(ctx, st, stanza.ResourceConstraint, "The room is busy; try again later")
	}
}

// costly reports whether a stanza to a room makes the bridge fetch from the
// homeserver or the sender's server: vCards (avatars), archive queries.
// They count against the sender's lookups, like vCards of Matrix users.
func costly(st any) bool {
	iq, ok := st.(*xmpp.IQ)
	if !ok {
		return false
	}
	switch iq.Payload.XMLName.Space {
	case xmpp.NSVCard:
		return iq.Type == xmpp.TypeGet
	case xmpp.NSMAM:
		return iq.Type == xmpp.TypeSet
	}
	return false
}

// createsPortal reports whether a stanza to a room without a portal is
// worth a homeserver lookup: a join, or a question about the room.
func createsPortal(st any) bool {
	switch s := st.(type) {
	case *xmpp.Presence:
		return s.Type == ""
	case *xmpp.IQ:
		return s.Type == xmpp.TypeGet
	}
	return false
}

// answerWithoutPortal answers what is sent to a room nobody joined.
func (b *Bridge) answerWithoutPortal(ctx context.Context, st any) {
	switch s := st.(type) {
	case *xmpp.Presence:
		if s.Type == "" {
			b.reject(ctx, st, stanza.Forbidden, "This room is not open to XMPP")
		}
		if s.Type == xmpp.TypeUnavailable && s.To.Resourcepart() != "" {
			// Confirm the leave, so that the client stops thinking it is in.
			b.send(ctx, &xmpp.Presence{Type: xmpp.TypeUnavailable, From: s.To, To: s.From, MUCUser: &xmpp.MUCUser{
				Items: []xmpp.MUCItem{{Affiliation: xmpp.AffNone, Role: xmpp.RoleNone}}, Status: xmpp.Statuses(xmpp.StatusSelf)}})
		}
	default:
		b.reject(ctx, st, stanza.NotAcceptable, "You are not in this room")
	}
}

// lookup collects the stanzas for a room while it is being looked up on
// Matrix, so that they reach the portal in order.
type lookup struct {
	waiting []any
}

// Bounds on room lookups, which anyone on an allowed domain can start by
// joining a room name: how many run at once, how many stanzas may wait for
// one, and how long one may take.
const (
	maxLookups       = 16
	maxLookupWaiting = 64
	lookupTimeout    = 30 * time.Second
)

func (b *Bridge) lookupRoom(ctx context.Context, local string, st any) {
	b.lookup(local, st, func(ctx context.Context) (*portal.Portal, *stanza.Error) {
		return b.createPortal(ctx, local, joiner(st))
	})
}

// missTTL is how long a room name that was not found is answered
// item-not-found without asking the homeserver again; maxMisses bounds
// how many are remembered.
const (
	missTTL   = 30 * time.Second
	maxMisses = 4096
)

// missCache remembers room names that were not found, for missTTL.
type missCache struct {
	mu sync.Mutex
	at map[string]time.Time
}

func (c *missCache) note(name string, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.at == nil {
		c.at = map[string]time.Time{}
	}
	if len(c.at) >= maxMisses {
		for k, t := range c.at {
			if now.Sub(t) >= missTTL {
				delete(c.at, k)
			}
		}
		if len(c.at) >= maxMisses {
			return
		}
	}
	c.at[name] = now
}

func (c *missCache) has(name string, now time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	t, ok := c.at[name]
	if ok && now.Sub(t) >= missTTL {
		delete(c.at, name)
		ok = false
	}
	return ok
}

// forget drops a name from the cache: its room was just made reachable.
func (c *missCache) forget(name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.at, name)
}

// maxListings bounds the room listings (disco#items of the service,
// disco#info of rooms without a portal) made at once, each beside the
// XMPP read loop.
const maxListings = 8

// goListing runs a room listing beside the XMPP read loop, and reports
// false, running nothing, when maxListings are under way already.
func (b *Bridge) goListing(list func()) bool {
	select {
	case b.listings <- struct{}{}:
	default:
		return false
	}
	go func() {
		defer func() { <-b.listings }()
		list()
	}()
	return true
}

// lookup runs create for the first stanza of a portal that does not run
// yet (key names it), and hands it and the stanzas that arrive for it
// meanwhile to the portal, in order, or answers them all with create's
// error.
func (b *Bridge) lookup(key string, st any, create func(context.Context) (*portal.Portal, *stanza.Error)) {
	b.mu.Lock()
	if l := b.pending[key]; l != nil {
		if len(l.waiting) >= maxLookupWaiting {
			b.mu.Unlock()
			b.reject(b.ctx, st, stanza.ResourceConstraint, "The room is still being looked up; try again later")
			return
		}
		l.waiting = append(l.waiting, st)
		b.mu.Unlock()
		return
	}
	if len(b.pending) >= maxLookups {
		b.mu.Unlock()
		b.reject(b.ctx, st, stanza.ResourceConstraint, "Too many rooms are being looked up; try again later")
		return
	}
	b.pending[key] = &lookup{waiting: []any{st}}
	b.mu.Unlock()
	go func() {
		cctx, cancel := context.WithTimeout(b.ctx, lookupTimeout)
		p, serr := create(cctx)
		cancel()
		ctx := b.ctx
		b.mu.Lock()
		waiting := b.pending[key].waiting
		delete(b.pending, key)
		b.mu.Unlock()
		for _, st := range waiting {
			if serr != nil {
				b.reject(ctx, st, serr.Condition, serr.Error())
			} else {
				b.queueXMPP(ctx, p, st)
			}
		}
	}()
}

// joiner is the bare JID of who sent a join, or zero.
func joiner(st any) jid.JID {
	if p, ok := st.(*xmpp.Presence); ok && p.Type == "" {
		return p.From.Bare()
	}
	return jid.JID{}
}

// createPortal finds the Matrix room of a MUC localpart and makes it a
// portal if XMPP users may reach it. The bot joins the room to read its
// state, and leaves again if the room turns out not to be reachable. A room
// the bot cannot join by itself is entered through the joining user's
// puppet, if that was invited: it accepts and brings the bot in.
func (b *Bridge) createPortal(ctx context.Context, local string, joiner jid.JID) (*portal.Portal, *stanza.Error) {
	roomJID, err := jid.New(local, b.componentJID().Domainpart(), "")
	if err != nil {
		roomJID, err = xmpp.ParseJID(local + "@" + b.componentJID().Domainpart())
	}
	if err != nil {
		return nil, xmpp.StanzaError(stanza.JIDMalformed, "")
	}
	name, server, _ := b.scheme.ParseRoomJID(roomJID)
	alias := id.RoomAlias("#" + name + ":" + server)
	log := b.Log.With().Stringer("alias", alias).Logger()

	roomID, err := b.Matrix.ResolveAlias(ctx, alias)
	if errors.Is(err, mautrix.MNotFound) {
		// The alias reached us case-folded; the room's may not be.
		roomID, _, err = b.Matrix.FindRoomByAliasFold(ctx, alias)
		if err == nil && roomID == "" {
			// No room has the alias (unlike one that is closed, or that an
			// invitation may open, which are asked about each time).
			b.misses.note(local, time.Now())
			return nil, xmpp.StanzaError(stanza.ItemNotFound, "There is no room "+alias.String())
		}
	}
	if err != nil {
		log.Warn().Err(err).Msg("Failed to resolve room alias")
		return nil, xmpp.StanzaError(stanza.RemoteServerTimeout, "The Matrix homeserver did not answer")
	}
	if open, err := b.roomOpen(ctx, roomID); err != nil {
		log.Error().Err(err).Msg("Failed to check whether the room is open")
		return nil, xmpp.StanzaError(stanza.InternalServerError, "")
	} else if !open {
		return nil, xmpp.StanzaError(stanza.Forbidden, "This room is not open to XMPP")
	}
	if row, err := b.DB.Portal.GetByRoomID(ctx, roomID); err != nil {
		log.Error().Err(err).Msg("Failed to look up portal")
		return nil, xmpp.StanzaError(stanza.InternalServerError, "")
	} else if row != nil {
		// The room is bridged under its canonical alias; this is another.
		return nil, xmpp.StanzaError(stanza.ItemNotFound, "This room is bridged as "+b.mucJIDString(row.Alias))
	}
	wasJoined := b.Matrix.AS.StateStore.IsInRoom(ctx, roomID, b.Matrix.BotID())
	if err = b.Matrix.JoinBot(ctx, roomID); errors.Is(err, mautrix.MForbidden) && !joiner.Equal(jid.JID{}) {
		puppet := b.Matrix.PuppetID(joiner.String())
		if aerr := b.Matrix.AcceptInvite(ctx, roomID, puppet, joiner.Localpart()); aerr == nil {
			err = nil
		} else {
			log.Info().Err(aerr).Msg("The joining user's puppet cannot enter the room either")
		}
	}
	if err != nil {
		log.Info().Err(err).Msg("Bridge bot cannot join the room")
		if errors.Is(err, mautrix.MForbidden) {
			return nil, xmpp.StanzaError(stanza.RegistrationRequired, "This room is members-only: you need an invitation from a member")
		}
		return nil, xmpp.StanzaError(stanza.RemoteServerTimeout, "The Matrix homeserver did not answer")
	}
	info, err := b.Matrix.RoomInfo(ctx, roomID)
	if err != nil {
		log.Warn().Err(err).Msg("Failed to read room state")
		return nil, xmpp.StanzaError(stanza.RemoteServerTimeout, "The Matrix homeserver did not answer")
	}
	leave := func() {
		if !wasJoined {
			if _, err := b.Matrix.Bot().LeaveRoom(ctx, roomID); err != nil {
				log.Warn().Err(err).Msg("Bridge bot failed to leave the room again")
			}
		}
	}
	if rerr := portal.Reachable(info, b.scheme, b.Config.Homeserver.Domain); rerr != nil {
		leave()
		serr := rerr.(stanza.Error)
		return nil, &serr
	}
	canonical, _ := portal.MUCJID(b.scheme, info.CanonicalAlias)
	if canonical.Localpart() != local {
		leave()
		return nil, xmpp.StanzaError(stanza.ItemNotFound, "This room is bridged as "+canonical.String())
	}
	if rerr := b.encryptionRefusal(info); rerr != nil {
		leave()
		log.Info().Err(rerr).Msg("Not bridging the room")
		return nil, xmpp.StanzaError(stanza.Forbidden, "This room cannot be bridged as its encryption stands")
	}
	row := &database.Portal{RoomID: roomID, Alias: info.CanonicalAlias, MUCLocal: local, CreatedAt: time.Now()}
	if err = b.DB.Portal.Insert(ctx, row); err != nil {
		log.Error().Err(err).Msg("Failed to store portal")
		return nil, xmpp.StanzaError(stanza.InternalServerError, "")
	}
	log.Info().Stringer("room_id", roomID).Msg("Created portal")
	// Members can see that the room is bridged: expose set m.bridge already,
	// unless the room was opened by exposure public or exposure was off for
	// a while.
	if err = b.Matrix.SetBridgeState(ctx, roomID, b.bridgeStateKey(canonical), b.bridgeState(info, canonical, "")); err != nil {
		log.Info().Err(err).Msg("Failed to set the bridge state event; the bot lacks the power level")
	}
	if b.Config.Bridge.Exposure == ExposurePublic {
		text := fmt.Sprintf("This public room is now reachable from XMPP as %s (%s): XMPP users who join see "+
			"the messages sent from now on and appear here as users of this homeserver.", canonical, xmpp.URI(canonical, "join"))
		if info.Encrypted {
			text += decryptNotice
		}
		if _, err = b.Matrix.SendNotice(ctx, roomID, text, ""); err != nil {
			log.Warn().Err(err).Msg("Failed to announce the bridge in the room")
		}
	}
	p, err := b.startHosted(row)
	if err != nil {
		return nil, xmpp.StanzaError(stanza.InternalServerError, "")
	}
	return p, nil
}

func (b *Bridge) mucJIDString(alias id.RoomAlias) string {
	j, err := portal.MUCJID(b.scheme, alias)
	if err != nil {
		return alias.String()
	}
	return j.String()
}

// reject answers a stanza with an error, unless it is an error or an IQ
// result itself.
func (b *Bridge) reject(ctx context.Context, st any, cond stanza.Condition, text string) {
	serr := xmpp.StanzaError(cond, strings.TrimSpace(text))
	from, to := addresses(st)
	zerolog.Ctx(ctx).Info().Str("condition", string(cond)).Str("reason", text).Type("stanza", st).
		Stringer("from", from).Stringer("to", to).Msg("Refusing stanza")
	if reply := xmpp.ErrorReply(st, serr); reply != nil {
		b.send(ctx, reply)
	}
}

func (b *Bridge) send(ctx context.Context, st any) {
	if err := b.XMPP.Send(ctx, st); err != nil {
		zerolog.Ctx(ctx).Warn().Err(err).Msg("Failed to send stanza")
	}
}

func addresses(st any) (from, to jid.JID) {
	switch s := st.(type) {
	case *xmpp.Message:
		return s.From.JID, s.To.JID
	case *xmpp.Presence:
		return s.From.JID, s.To.JID
	case *xmpp.IQ:
		return s.From.JID, s.To.JID
	}
	return jid.JID{}, jid.JID{}
}

// userVCard answers a vCard request to a Matrix user's contact JID with the
// user's profile (XEP-0054).
func (b *Bridge) userVCard(ctx context.Context, iq *xmpp.IQ, userID id.UserID) {
	name, avatar, err := b.Matrix.Profile(ctx, userID)
	if err != nil {
		b.XMPP.Reply(ctx, iq, nil, xmpp.StanzaError(stanza.ItemNotFound, "No such Matrix user"))
		return
	}
	card := &xmpp.VCard{FN: name, Nickname: name}
	if card.Photo, err = b.avatars.Photo(ctx, avatar); err != nil {
		zerolog.Ctx(ctx).Warn().Err(err).Stringer("user_id", userID).Msg("Failed to fetch an avatar for a vCard")
	}
	b.XMPP.Reply(ctx, iq, card, nil)
}

// harmless reports whether a stanza from a refused domain may still be
// answered: service discovery and pings of the component itself, which
// reveal nothing of its rooms.
func harmless(st any, to jid.JID) bool {
	iq, ok := st.(*xmpp.IQ)
	return ok && to.Localpart() == "" && iq.Type == xmpp.TypeGet &&
		(iq.Payload.XMLName.Space == xmpp.NSDiscoInfo || iq.Payload.XMLName.Space == xmpp.NSPing)
}
