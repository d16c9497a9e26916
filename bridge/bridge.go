// Package bridge wires the Matrix appservice, the XMPP component, the
// database and the portals together, and owns their lifecycle. It routes
// every event from either side to the portal of its room.
package bridge

import (
	"context"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"
	"go.mau.fi/util/dbutil"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
	"mellium.im/xmpp/jid"

	"github.com/mxpp/mxpp/database"
	"github.com/mxpp/mxpp/matrix"
	"github.com/mxpp/mxpp/msgconv"
	"github.com/mxpp/mxpp/portal"
	"github.com/mxpp/mxpp/ratelimit"
	"github.com/mxpp/mxpp/remotemuc"
	"github.com/mxpp/mxpp/xmpp"
)

// Bridge is one running bridge.
type Bridge struct {
	// Version is the bridge's version, for the version command.
	Version string
	Config  *Config
	Log     zerolog.Logger
	// Audit logs what operators need to review later (see newAuditLogger).
	Audit  zerolog.Logger
	DB     *database.Database
	Matrix *matrix.Connector
	XMPP   *xmpp.Component

	// states is the Matrix state store (in DB): who is in which room.
	states        *matrix.StateStore
	auditCloser   io.Closer
	policy        xmpp.DomainPolicy
	scheme        xmpp.Scheme
	occupantIDKey []byte
	avatars       *portal.Avatars
	puppetAvatars *portal.PuppetAvatars
	// presence throttles and keeps Matrix users' presence as XMPP shows
	// it, puppetPresence XMPP users' presence for their puppets
	// (presence.go).
	presence       *throttle[shown]
	puppetPresence *throttle[puppetShown]
	// instance is this process's hold on the database as the bridge's
	// active process (standby.go).
	instance   *database.InstanceLock
	mediaLinks *msgconv.MediaLinks
	fetcher    *msgconv.Fetcher
	ctx        context.Context
	cancel     context.CancelFunc
	failed     chan error // gets the error that ends the bridge on its own
	wg         sync.WaitGroup

	dir    directoryCache
	events *eventFilter

	bansMu sync.Mutex
	bans   []string

	hsMu      sync.Mutex
	hsUp      bool
	hsChecked time.Time

	metrics  *metrics
	commands []*command
	cmdQueue chan commandRequest
	started  time.Time

	mu sync.Mutex
	// byRoom holds the running portals of every kind by Matrix room;
	// byMUC the rooms the component hosts by MUC localpart; byRemote the
	// portals into MUCs hosted elsewhere by the MUC's bare JID.
	byRoom   map[id.RoomID]roomPortal
	byMUC    map[string]*portal.Portal
	byRemote map[string]*remotemuc.Portal
	// byDirect holds the running direct chats by directKey.
	byDirect map[string]*portal.Portal
	// hostedDeps is what every hosted portal and direct chat is given,
	// made with the first.
	hostedDeps *portal.Deps
	// closing are bridged rooms the exposure setting no longer opens to
	// XMPP: nothing crosses in them until HandleConnected has closed them.
	closing map[id.RoomID]bool
	pending map[string]*lookup
	// invitations limits the XEP-0249 invitations each Matrix user makes
	// the bridge send.
	invitations *ratelimit.Keyed
	// newPuppets and allPuppets limit the puppets lookups create, per
	// XMPP domain and in all.
	newPuppets, allPuppets *ratelimit.Keyed
	// newChats limits how many direct chats each XMPP user opens, lookups
	// how many Matrix users it has looked up; busyNotices how often a room
	// is told that the bot dropped a command.
	newChats    *ratelimit.Keyed
	lookups     *ratelimit.Keyed
	busyNotices *ratelimit.Keyed
	// domainLookups bounds the lookups of all the senders of one XMPP
	// domain together: fresh JIDs get fresh buckets of lookups.
	domainLookups *ratelimit.Keyed
	// misses remembers, briefly, room names that were looked up and not
	// found; listings bounds the room listings made at once.
	misses   *missCache
	listings chan struct{}
	// newPortals limits how many portals into MUCs hosted elsewhere each
	// Matrix user, and alias queries together, open.
	newPortals *ratelimit.Keyed
}

var (
	_ matrix.Handler = (*Bridge)(nil)
	_ xmpp.Handler   = (*Bridge)(nil)
)

// New builds a bridge from a validated config. Nothing runs until Start.
func New(cfg *Config, log zerolog.Logger) (*Bridge, error) {
	audit, auditCloser, err := newAuditLogger(cfg.Logging)
	if err != nil {
		return nil, err
	}
	b := &Bridge{
		Config:        cfg,
		Log:           log,
		Audit:         audit,
		auditCloser:   auditCloser,
		byRoom:        map[id.RoomID]roomPortal{},
		byMUC:         map[string]*portal.Portal{},
		byRemote:      map[string]*remotemuc.Portal{},
		byDirect:      map[string]*portal.Portal{},
		closing:       map[id.RoomID]bool{},
		pending:       map[string]*lookup{},
		newChats:      ratelimit.New(newChatEvery, newChatBurst),
		lookups:       ratelimit.New(lookupEvery, lookupBurst),
		domainLookups: ratelimit.New(domainLookupEvery, domainLookupBurst),
		misses:        &missCache{},
		listings:      make(chan struct{}, maxListings),
		busyNotices:   ratelimit.New(10*time.Second, 1),
		invitations:   ratelimit.New(invitationEvery, invitationBurst),
		newPortals:    ratelimit.New(newPortalEvery, newPortalBurst),
		newPuppets:    ratelimit.New(newPuppetEvery, newPuppetBurst),
		allPuppets:    ratelimit.New(newPuppetsAllEvery, newPuppetsAllBurst),
		events:        newEventFilter(cfg.Bridge.SyncFallback),
		cmdQueue:      make(chan commandRequest, 64),
		started:       time.Now(),
		Version:       "dev",
	}
	b.commands = b.commandList()
	b.initPresence()
	var comp *xmpp.Component
	comp, err = xmpp.NewComponent(cfg.XMPP, b, log.With().Str("component", "xmpp").Logger())
	if err != nil {
		return nil, err
	}
	b.XMPP = comp
	comp.RedactBodies = cfg.Logging.RedactBodies
	b.scheme = xmpp.Scheme{Domain: comp.Domain()}
	b.policy = cfg.XMPP.Policy()
	return b, nil
}

// Start opens the database, starts listening for the homeserver and
// connects the component. It returns once the bridge can take traffic, or
// with the first error.
func (b *Bridge) Start(ctx context.Context) error {
	b.ctx, b.cancel = context.WithCancel(b.Log.WithContext(context.WithoutCancel(ctx)))
	b.failed = make(chan error, 1)
	db, err := database.Open(ctx, b.Config.Database, b.Log.With().Str("component", "database").Logger())
	if err != nil {
		return err
	}
	b.DB = db
	if err = b.takeInstance(ctx); err != nil {
		return err
	}
	if b.occupantIDKey, err = db.Secret(ctx, database.KeyOccupantID); err != nil {
		return fmt.Errorf("failed to load occupant id key: %w", err)
	}
	if err = b.loadBans(ctx); err != nil {
		return fmt.Errorf("failed to load the ban list: %w", err)
	}
	stateLog := dbutil.ZeroLogger(b.Log.With().Str("component", "statestore").Logger())
	stateStore := matrix.NewStateStore(db.Database, stateLog)
	b.states = stateStore
	if err = db.Locked(ctx, stateStore.Upgrade); err != nil {
		return fmt.Errorf("failed to upgrade state store: %w", err)
	}
	b.Matrix, err = matrix.NewConnector(b.Config.MatrixConfig(), stateStore, b, b.Log.With().Str("component", "matrix").Logger())
	if err != nil {
		return err
	}
	b.Matrix.RedactBodies = b.Config.Logging.RedactBodies
	b.Matrix.UpgradeLock = db.Locked
	b.registerHealth(b.Matrix.Mux)
	if err = b.serveMetrics(); err != nil {
		return err
	}
	if err = b.setupMedia(ctx); err != nil {
		return fmt.Errorf("failed to set up media: %w", err)
	}
	b.Matrix.Mux.HandleFunc("GET "+msgconv.MediaPathPrefix, b.serveMedia)
	b.avatars = portal.NewAvatars(b.Matrix.DownloadMedia, b.Log.With().Str("component", "avatars").Logger())
	b.avatars.Ready = b.avatarReady
	b.puppetAvatars = &portal.PuppetAvatars{Matrix: b.Matrix, XMPP: b.XMPP, DB: b.DB, From: b.XMPP.Domain(),
		Log: b.Log.With().Str("component", "avatars").Logger()}
	if err = b.findClosedRooms(ctx); err != nil {
		return err
	}
	if err = b.Matrix.Start(b.ctx); err != nil {
		return err
	}
	if err = b.initBot(ctx); err != nil {
		b.Log.Warn().Err(err).Msg("Failed to set up the bridge bot; is the homeserver up and the registration installed?")
	}
	if b.Config.Encryption.Allow {
		cryptoLog := dbutil.ZeroLogger(b.Log.With().Str("component", "cryptostore").Logger())
		if err = b.Matrix.InitCrypto(ctx, b.DB.Database, cryptoLog); err != nil {
			return fmt.Errorf("encryption: %w", err)
		}
		b.Matrix.SetPendingStore(keyWaitStore{b.DB})
		if err = b.Matrix.ResumeKeyWaits(ctx); err != nil {
			b.Log.Warn().Err(err).Msg("Events that waited for their room key before the restart are not bridged")
		}
	}
	b.Matrix.SetCatchUpRooms(b.runningRooms)
	b.Matrix.AcceptTransactions()
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		if err := b.XMPP.Run(b.ctx); err != nil {
			b.failed <- fmt.Errorf("xmpp: %w", err)
		}
	}()
	b.wg.Add(2)
	go func() {
		defer b.wg.Done()
		b.runCommands()
	}()
	go func() {
		defer b.wg.Done()
		b.cleanupLoop()
	}()
	if b.Config.Bridge.SyncFallback != SyncOff || b.Matrix.EncryptionOn() {
		b.wg.Add(1)
		go func() {
			defer b.wg.Done()
			b.Matrix.RunSync(b.ctx, syncStore{b.DB}, b.events.wantSync)
		}()
	}
	if interval := b.Config.Bridge.OccupantCheckInterval; interval > 0 {
		b.wg.Add(1)
		go func() {
			defer b.wg.Done()
			b.checkQuietLoop(interval)
		}()
	}
	b.Log.Info().Stringer("xmpp_domain", b.XMPP.Domain()).Str("homeserver", b.Config.Homeserver.Address).Msg("Bridge started")
	return nil
}

// Failed delivers the error that ends a started bridge without being
// asked to: its first XMPP connection found another instance running.
func (b *Bridge) Failed() <-chan error { return b.failed }

// initBot checks that the homeserver knows the appservice and sets the
// bot's profile.
func (b *Bridge) initBot(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	bot := b.Matrix.Bot()
	if _, err := bot.Whoami(ctx); err != nil {
		return fmt.Errorf("homeserver did not accept the as_token: %w", err)
	}
	if name := b.Config.Appservice.Bot.Displayname; name != "" {
		if err := bot.SetDisplayName(ctx, name); err != nil {
			return err
		}
	}
	if avatar := b.Config.Appservice.Bot.Avatar; avatar != "" {
		uri, _ := id.ParseContentURI(avatar)
		if err := bot.SetAvatarURL(ctx, uri); err != nil {
			return err
		}
	}
	return nil
}

// shutdownDrain bounds how long Stop lets the portals handle what they
// hold before everything is cancelled.
var shutdownDrain = 10 * time.Second

// Stop shuts the bridge down: no new transactions are taken, portals finish
// the event at hand, the component says goodbye, the database is closed.
func (b *Bridge) Stop() {
	if b.cancel == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), shutdownDrain)
	defer cancel()
	if b.Matrix != nil {
		b.Matrix.Stop(ctx)
	}
	b.mu.Lock()
	portals := make([]roomPortal, 0, len(b.byRoom))
	for _, p := range b.byRoom {
		portals = append(portals, p)
	}
	b.mu.Unlock()
	// Drain: what the portals hold reaches the other side, within the
	// bound; the homeserver retries what did not, XMPP senders see no
	// reflection for it and resend.
	var wg sync.WaitGroup
	for _, p := range portals {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := p.Drain(ctx); err != nil {
				b.Log.Warn().Err(err).Stringer("room_id", p.Row().RoomID).Int("queued", p.QueueLen()).Msg("Stopping with events still queued")
			}
		}()
	}
	wg.Wait()
	// Then everything ends at once: what a portal is still doing (a
	// homeserver call, a file) is cancelled rather than waited for, and no
	// room waits for another.
	b.cancel()
	if b.Matrix != nil {
		b.Matrix.StopDeliveries()
	}
	for _, p := range portals {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.Stop()
		}()
	}
	wg.Wait()
	b.wg.Wait()
	b.instance.Release() // a standby takes over now
	if b.DB != nil {
		_ = b.DB.Close()
	}
	_ = b.auditCloser.Close()
	b.Log.Info().Msg("Bridge stopped")
}

// HandleMatrixEvent implements matrix.Handler: it queues the event in its
// room's portal. Rooms without a portal are not bridged.
func (b *Bridge) HandleMatrixEvent(ctx context.Context, evt *event.Event) {
	if evt.Type == event.EphemeralEventPresence {
		b.matrixPresence(ctx, evt)
		return
	}
	if !b.events.accept(evt) {
		b.awaitDuplicate(ctx, evt)
		return
	}
	p, err := b.portalByRoom(ctx, evt.RoomID)
	if err != nil {
		zerolog.Ctx(ctx).Error().Err(err).Stringer("room_id", evt.RoomID).Msg("Failed to look up portal")
		b.events.forget(evt.ID)
		if txn := matrix.TxnFrom(ctx); txn != nil {
			txn.Await(evt.ID, func(context.Context) error { return err })
		}
		return
	}
	if evt.Type == event.EventMessage {
		if line, ok := b.commandText(ctx, evt, p != nil); ok {
			// Commands are for the bot: they are not bridged.
			select {
			case b.cmdQueue <- commandRequest{room: evt.RoomID, sender: evt.Sender, event: evt.ID, line: line}:
			default:
				zerolog.Ctx(ctx).Warn().Msg("Too many bot commands at once; dropping one")
				if b.busyNotices.Allow(evt.RoomID.String(), time.Now()) {
					go func() {
						if _, err := b.Matrix.SendNotice(b.ctx, evt.RoomID, "The bridge bot is busy; send the command again in a moment.", evt.ID); err != nil {
							b.Log.Warn().Err(err).Msg("Failed to say that the bot is busy")
						}
					}()
				}
			}
			return
		}
	}
	switch evt.Type {
	case event.EventMessage, event.EventReaction, event.EventRedaction:
		// Whoever may not use the bridge has nothing of theirs cross:
		// neither messages nor reactions nor deletions (typing and
		// receipts are filtered per user in the portal).
		if !b.permitted(evt.Sender) {
			zerolog.Ctx(ctx).Debug().Stringer("sender", evt.Sender).Str("event_type", evt.Type.Type).
				Msg("Not bridging an event of a user without permission")
			return
		}
	}
	if p != nil && evt.Type == event.StateEncryption {
		go b.encryptionTurnedOn(evt.RoomID)
	}
	if p != nil {
		b.queue(ctx, p, evt)
		b.checkDeparted(evt)
		return
	}
	b.handleUnbridgedEvent(ctx, evt)
}

// permitted reports whether a Matrix user's events may cross: users at
// level user or above, and the bridge's own.
func (b *Bridge) permitted(u id.UserID) bool {
	return b.Config.hasLevel(u, LevelUser) || b.Matrix.IsBridgeUser(u)
}

// queue hands an event to its portal; the transaction waits until the
// portal delivered it. A portal that ended meanwhile (its room closed, its
// alias moved) did not take the event: the transaction fails, so that the
// homeserver sends it again, to whichever portal then stands for the room.
func (b *Bridge) queue(ctx context.Context, p roomPortal, evt *event.Event) {
	txn := matrix.TxnFrom(ctx)
	if !p.Queue(ctx, evt) {
		zerolog.Ctx(ctx).Warn().Stringer("event_id", evt.ID).Stringer("room_id", evt.RoomID).
			Msg("The room's portal ended before it took an event; asking the homeserver to send it again")
		b.events.forget(evt.ID)
		if txn != nil {
			txn.Await(evt.ID, func(context.Context) error { return fmt.Errorf("room %s: the portal ended", evt.RoomID) })
		}
		return
	}
	if txn != nil {
		txn.AwaitEvent(p, evt.ID, b.flushPortal(p))
	}
}

// awaitDuplicate makes a transaction that brings an event again wait for
// the first copy: a homeserver retries a transaction that was not
// answered in time while its events may still be on their way, and only
// their delivery may answer it.
func (b *Bridge) awaitDuplicate(ctx context.Context, evt *event.Event) {
	txn := matrix.TxnFrom(ctx)
	if txn == nil || evt.Type.Class == event.EphemeralEventType {
		return
	}
	b.mu.Lock()
	p := b.byRoom[evt.RoomID]
	b.mu.Unlock()
	if p != nil {
		txn.AwaitEvent(p, evt.ID, b.flushPortal(p))
	}
}

// flushPortal returns the wait of a transaction that handed events to a
// portal: they must have been handled, and delivered to XMPP. Undelivered
// ones are forgotten by the duplicate filter, so that the transaction's
// retry (by the homeserver, or by the sync or catch-up that made it)
// brings them again.
func (b *Bridge) flushPortal(p roomPortal) func(context.Context, []id.EventID) error {
	return func(ctx context.Context, events []id.EventID) error {
		failed, err := p.Flush(ctx, events...)
		if err != nil {
			return fmt.Errorf("room %s: %w", p.Row().RoomID, err)
		}
		if len(failed) > 0 {
			b.events.forget(failed...)
			return fmt.Errorf("room %s: %d event(s) did not reach XMPP", p.Row().RoomID, len(failed))
		}
		return nil
	}
}

// portalByRoom returns the running portal of a room, loading it from the
// database if needed, or nil if the room is not bridged.
func (b *Bridge) portalByRoom(ctx context.Context, roomID id.RoomID) (roomPortal, error) {
	b.mu.Lock()
	p := b.byRoom[roomID]
	b.mu.Unlock()
	if p != nil {
		return p, nil
	}
	row, err := b.DB.Portal.GetByRoomID(ctx, roomID)
	if err != nil || row == nil || b.isClosing(row.RoomID) {
		return nil, err
	}
	return b.startPortal(row)
}

// hostedByRoom is portalByRoom for a room the component hosts (or a
// direct chat): nil for a portal into a MUC hosted elsewhere.
func (b *Bridge) hostedByRoom(ctx context.Context, roomID id.RoomID) (*portal.Portal, error) {
	p, err := b.portalByRoom(ctx, roomID)
	if hosted, ok := p.(*portal.Portal); ok {
		return hosted, err
	}
	return nil, err
}

// portalByMUC is portalByRoom for a MUC localpart.
func (b *Bridge) portalByMUC(ctx context.Context, local string) (*portal.Portal, error) {
	b.mu.Lock()
	p := b.byMUC[local]
	b.mu.Unlock()
	if p != nil {
		return p, nil
	}
	row, err := b.DB.Portal.GetByMUCLocal(ctx, local)
	if err != nil || row == nil || b.isClosing(row.RoomID) {
		return nil, err
	}
	return b.startHosted(row)
}

// startPortal runs a portal of any kind for a row, or returns the one
// already running.
func (b *Bridge) startPortal(row *database.Portal) (roomPortal, error) {
	// No typed nil in the interface: callers compare with nil.
	if row.IsRemote() {
		p, err := b.startRemote(row)
		if err != nil {
			return nil, err
		}
		return p, nil
	}
	p, err := b.startHosted(row)
	if err != nil {
		return nil, err
	}
	return p, nil
}

// runningRooms returns the rooms of the running portals.
func (b *Bridge) runningRooms() []id.RoomID {
	b.mu.Lock()
	defer b.mu.Unlock()
	rooms := make([]id.RoomID, 0, len(b.byRoom))
	for room := range b.byRoom {
		rooms = append(rooms, room)
	}
	return rooms
}

// portalMoved files a running portal under its new MUC address.
func (b *Bridge) portalMoved(p *portal.Portal, oldLocal string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.byMUC[oldLocal] == p {
		delete(b.byMUC, oldLocal)
	}
	b.byMUC[p.Row().MUCLocal] = p
	b.misses.forget(p.Row().MUCLocal)
}

// forgetPortal drops a portal that closed itself; a later event loads it
// again from the database if its row is still there.
func (b *Bridge) forgetPortal(p roomPortal) {
	b.mu.Lock()
	defer b.mu.Unlock()
	row := p.Row()
	if b.byRoom[row.RoomID] == p {
		delete(b.byRoom, row.RoomID)
	}
	for k, v := range b.byMUC {
		if roomPortal(v) == p {
			delete(b.byMUC, k)
		}
	}
	if r := b.byRemote[row.RemoteJID]; r != nil && roomPortal(r) == p {
		delete(b.byRemote, row.RemoteJID)
	}
	if key := directKey(row.DMUser, row.DMJID, row.DMVia); row.IsDirect() && roomPortal(b.byDirect[key]) == p {
		delete(b.byDirect, key)
	}
}

// HandleConnected implements xmpp.Handler: after the component (re)connects,
// every portal with occupants checks that they are still there, and every
// portal into a MUC hosted elsewhere joins its members again.
func (b *Bridge) HandleConnected(ctx context.Context) {
	b.closeClosedRooms(ctx)
	start := time.Now()
	// The portals into MUCs hosted elsewhere first: until they are back
	// in, their members hear nothing of those rooms. A hosted room's
	// traffic crosses before its check.
	var restore []roomPortal
	remotes := 0
	remote, err := b.DB.Portal.GetRemote(ctx)
	if err != nil {
		b.Log.Error().Err(err).Msg("Failed to list the portals into MUCs hosted elsewhere")
	}
	for _, row := range remote {
		if p, err := b.startRemote(row); err == nil {
			restore = append(restore, p)
			remotes++
		} else {
			b.Log.Error().Err(err).Stringer("room_id", row.RoomID).Msg("Failed to start a portal into a MUC hosted elsewhere")
		}
	}
	if err := b.hostedWithOccupants(ctx, func(row *database.Portal) {
		if p, err := b.startHosted(row); err == nil {
			restore = append(restore, p)
		}
	}); err != nil {
		b.Log.Error().Err(err).Msg("Failed to list the portals with occupants")
	}
	b.restorePortals(ctx, restore)
	if ctx.Err() == nil {
		b.Log.Info().Int("hosted", len(restore)-remotes).Int("remote", remotes).
			Dur("took", time.Since(start)).Msg("Portals restored after connecting")
	}
}

// hostedWithOccupants calls f with every hosted room's portal that has
// occupant sessions stored, in two queries.
func (b *Bridge) hostedWithOccupants(ctx context.Context, f func(*database.Portal)) error {
	rooms, err := b.DB.Occupant.Rooms(ctx)
	if err != nil {
		return err
	}
	occupied := make(map[id.RoomID]bool, len(rooms))
	for _, roomID := range rooms {
		occupied[roomID] = true
	}
	rows, err := b.DB.Portal.GetAll(ctx)
	if err != nil {
		return err
	}
	for _, row := range rows {
		if occupied[row.RoomID] {
			f(row)
		}
	}
	return nil
}

// restoreConcurrency is how many portals restore at once after a connect.
// Each reads its room's state from the homeserver, then pings its sessions
// or joins its members: ten thousand rooms at once would be as many
// homeserver requests and a flood of stanzas, and traffic of the rooms in
// use would wait behind them.
var restoreConcurrency = 8

// restorePortals tells each portal that the link is back, at most
// restoreConcurrency at a time, each waited for until it handled it. A
// portal that has traffic before its turn loads at once for it; the check
// follows in turn. A new connection's restore replaces this one (ctx ends).
func (b *Bridge) restorePortals(ctx context.Context, portals []roomPortal) {
	turns := make(chan roomPortal)
	var wg sync.WaitGroup
	for range min(restoreConcurrency, len(portals)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for p := range turns {
				var evt any = portal.Reconnected{}
				if _, ok := p.(*remotemuc.Portal); ok {
					evt = remotemuc.Reconnected{}
				}
				if p.Queue(ctx, evt) {
					_, _ = p.Flush(ctx)
				}
			}
		}()
	}
	for _, p := range portals {
		select {
		case turns <- p:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
	}
	close(turns)
	wg.Wait()
}

// avatarReady tells the running portals that an avatar's hash is known.
func (b *Bridge) avatarReady(uri id.ContentURIString) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, p := range b.byRoom {
		if hosted, ok := p.(*portal.Portal); ok {
			hosted.TryQueue(portal.AvatarReady{URI: uri})
		}
	}
}

// checkQuietLoop has every running portal ping its quiet sessions once per
// interval. A portal that is busy (full queue) skips a round.
func (b *Bridge) checkQuietLoop(interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-b.ctx.Done():
			return
		case <-t.C:
		}
		if !b.XMPP.Connected() {
			continue
		}
		b.mu.Lock()
		for _, p := range b.byRoom {
			switch p := p.(type) {
			case *portal.Portal:
				p.TryQueue(portal.CheckQuiet{})
			case *remotemuc.Portal:
				p.TryQueue(remotemuc.CheckQuiet{})
			}
		}
		b.mu.Unlock()
	}
}

// componentJID is the bare domain of the component.
func (b *Bridge) componentJID() jid.JID { return b.XMPP.Domain() }

// homeDomain is the XMPP server's own domain, taken to be the component's
// parent domain (matrix.example.org -> example.org).
func homeDomain(component string) string {
	if _, parent, ok := strings.Cut(component, "."); ok && strings.Contains(parent, ".") {
		return parent
	}
	return component
}

// portalMetrics returns the metrics portals report to, nil when off (a nil
// *metrics in the interface would not be nil).
func (b *Bridge) portalMetrics() portal.Metrics {
	if b.metrics == nil {
		return nil
	}
	return b.metrics
}
