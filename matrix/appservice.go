package matrix

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/appservice"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
)

// MaxTransactionSize bounds the body of one appservice transaction. A
// homeserver batches at most a few hundred events; anything beyond this is
// refused with 413 instead of being read into memory.
const MaxTransactionSize = 32 << 20

// Handler receives the room events of appservice transactions, one at a
// time and in the order the homeserver sent them. Implementations queue the
// event and return; the transaction is acknowledged when all its events were
// handed over.
type Handler interface {
	HandleMatrixEvent(ctx context.Context, evt *event.Event)
}

// Connector is the bridge's appservice: it serves the homeserver's pushes
// and makes client-server calls as the bot and the puppets.
type Connector struct {
	Config
	AS  *appservice.AppService
	log zerolog.Logger

	handler Handler
	server  *http.Server
	// Mux serves the appservice API; the bridge may add its own routes.
	Mux *http.ServeMux

	txnMu sync.Mutex
	txns  *recentSet

	// RedactBodies keeps message text out of the log even at trace level.
	RedactBodies bool
	// UpgradeLock, if set, runs the crypto store's schema upgrade so that
	// two processes starting at once do not both run it.
	UpgradeLock func(ctx context.Context, upgrade func(context.Context) error) error

	crypto *Crypto // nil unless InitCrypto ran

	streamClient *http.Client // for StreamMedia

	// accepting is set once the bridge can handle every kind of event
	// (encryption set up): transactions before that get 503.
	accepting atomic.Bool

	keys keyWaits // events waiting for their room key
	// redelivering counts the goroutines that hand events no transaction
	// carried again until they are delivered (handUntilDelivered).
	redelivering sync.WaitGroup
	catchUpRooms func() []id.RoomID
	decryptHook  func(context.Context, *event.Event, time.Duration) (*event.Event, error)

	lastPush atomic.Int64                       // when the last transaction came, Unix ns
	longPoll atomic.Pointer[context.CancelFunc] // ends the bot's waiting /sync

	eventLevels levelTables // shared by the rooms' cached power levels
}

// NewConnector prepares the appservice. stateStore caches room membership
// and registrations across restarts.
func NewConnector(cfg Config, stateStore appservice.StateStore, handler Handler, log zerolog.Logger) (*Connector, error) {
	as, err := appservice.CreateFull(appservice.CreateOpts{
		Registration:     cfg.Registration(),
		HomeserverDomain: cfg.Homeserver.Domain,
		HomeserverURL:    cfg.Homeserver.Address,
		HostConfig:       appservice.HostConfig{Hostname: cfg.Appservice.Hostname, Port: cfg.Appservice.Port},
		StateStore:       stateStore,
	})
	if err != nil {
		return nil, fmt.Errorf("failed to create appservice: %w", err)
	}
	as.Log = log
	as.UserAgent = "mxpp"
	c := &Connector{Config: cfg, AS: as, log: log, handler: handler, Mux: http.NewServeMux(), txns: newRecentSet(1024),
		streamClient: streamClient(as.BotClient().Client.Transport)}
	// Transactions are ours: mautrix acknowledges them before handling and
	// reads bodies without a bound. Everything else is mautrix's.
	c.Mux.HandleFunc("PUT /_matrix/app/v1/transactions/{txnID}", c.putTransaction)
	c.Mux.Handle("/_matrix/", as.Router)
	allow, _ := handler.(PuppetAllower)
	rooms, _ := handler.(RoomAliasCreator)
	as.QueryHandler = userQuery{c: c, allow: allow, rooms: rooms}
	return c, nil
}

// PuppetAllower is implemented by handlers that let the homeserver create
// puppets on demand (appservice user queries): when a Matrix user looks up
// or invites an XMPP user the bridge has not seen yet.
type PuppetAllower interface {
	AllowPuppet(remote string) bool
	// MayRegisterPuppet bounds how many puppets lookups create: each is
	// an account on the homeserver.
	MayRegisterPuppet(remote string) bool
}

// RoomAliasCreator is implemented by handlers that make a room for an
// alias in the bridge's namespace when the homeserver asks for it
// (appservice room alias queries): the portals into MUCs hosted elsewhere.
type RoomAliasCreator interface {
	// CreateAliasRoom creates the room of alias and reports whether it
	// did (or it exists already). The homeserver gives up after a while
	// (Dendrite: 30 s); ctx ends before that.
	CreateAliasRoom(ctx context.Context, alias id.RoomAlias) bool
}

// aliasQueryTimeout bounds answering a room alias query, below the
// homeserver's own timeout for it.
const aliasQueryTimeout = 25 * time.Second

// userQuery answers the homeserver's questions about users and aliases in
// the bridge's namespaces: a puppet the handler allows is registered on the
// spot, and a room the handler makes for an alias is created.
type userQuery struct {
	c     *Connector
	allow PuppetAllower    // nil: no puppets on demand
	rooms RoomAliasCreator // nil: no rooms on demand
}

func (q userQuery) QueryAlias(alias id.RoomAlias) bool {
	if q.rooms == nil {
		return false
	}
	ctx, cancel := context.WithTimeout(q.c.log.WithContext(context.Background()), aliasQueryTimeout)
	defer cancel()
	return q.rooms.CreateAliasRoom(ctx, alias)
}

func (q userQuery) QueryUser(userID id.UserID) bool {
	if q.allow == nil {
		return false
	}
	remote, ok := q.c.ParsePuppetID(userID)
	if !ok || !q.allow.AllowPuppet(remote) {
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if known, err := q.c.AS.StateStore.IsRegistered(ctx, userID); err == nil && !known && !q.allow.MayRegisterPuppet(remote) {
		q.c.log.Warn().Stringer("user_id", userID).Msg("Not creating a puppet the homeserver asked for: too many new ones from its domain")
		return false
	}
	if err := q.c.EnsurePuppet(ctx, userID, remote); err != nil {
		q.c.log.Warn().Err(err).Stringer("user_id", userID).Msg("Failed to create a puppet the homeserver asked for")
		return false
	}
	q.c.log.Info().Stringer("user_id", userID).Msg("Created a puppet the homeserver asked for")
	return true
}

// Start listens for the homeserver. It returns once the socket is bound, so a
// busy port is reported at start.
func (c *Connector) Start(ctx context.Context) error {
	c.keys.ctx = ctx
	addr := net.JoinHostPort(c.Appservice.Hostname, strconv.Itoa(int(c.Appservice.Port)))
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("failed to listen on %s: %w", addr, err)
	}
	c.server = &http.Server{
		Handler:           c.Mux,
		ReadHeaderTimeout: 10 * time.Second,
		BaseContext:       func(net.Listener) context.Context { return ctx },
	}
	go func() {
		if err := c.server.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			c.log.Error().Err(err).Msg("Appservice listener failed")
		}
	}()
	c.log.Info().Str("address", addr).Msg("Appservice listening")
	return nil
}

// AcceptTransactions starts taking the homeserver's transactions: call it
// once everything their handling needs is set up (InitCrypto included).
// Before, they are answered 503, so that none is half understood.
func (c *Connector) AcceptTransactions() { c.accepting.Store(true) }

// Stop closes the listener, letting running requests finish for a while.
func (c *Connector) Stop(ctx context.Context) {
	if c.server != nil {
		_ = c.server.Shutdown(ctx)
	}
}

// putTransaction handles PUT /_matrix/app/v1/transactions/{txnID}
// (application service API §2.2.1). It hands every event to the handler in
// order and answers once the handler has finished with them (see Txn), so a
// crash or a failure before the answer makes the homeserver send the
// transaction again.
func (c *Connector) putTransaction(w http.ResponseWriter, r *http.Request) {
	if !c.AS.CheckServerToken(w, r) {
		c.log.Warn().Str("remote", r.RemoteAddr).Msg("Refused appservice transaction with a missing or wrong hs_token")
		return
	}
	txnID := r.PathValue("txnID")
	if !c.accepting.Load() {
		// Until then encrypted events could not be read: the homeserver
		// keeps the transaction and sends it again.
		c.log.Debug().Str("transaction_id", txnID).Msg("Not taking transactions yet; asking the homeserver to retry")
		mautrix.RespError{ErrCode: "M_UNKNOWN", Err: "The bridge is starting; retry later",
			StatusCode: http.StatusServiceUnavailable}.Write(w)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxTransactionSize))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			c.log.Warn().Str("transaction_id", txnID).Int64("limit", mbe.Limit).Msg("Refused an appservice transaction over the size limit")
			mautrix.RespError{ErrCode: "M_TOO_LARGE", Err: "Transaction too large", StatusCode: http.StatusRequestEntityTooLarge}.Write(w)
		} else {
			c.log.Warn().Err(err).Str("transaction_id", txnID).Msg("Failed to read an appservice transaction; the homeserver will retry it")
			mautrix.MNotJSON.WithMessage("Failed to read request body").Write(w)
		}
		return
	}
	log := c.log.With().Str("transaction_id", txnID).Logger()
	var txn appservice.Transaction
	if err = json.Unmarshal(body, &txn); err != nil {
		log.Warn().Err(err).Msg("Refused unparseable appservice transaction")
		mautrix.MBadJSON.WithMessage("Failed to parse transaction").Write(w)
		return
	}
	// The homeserver sends one transaction at a time; the lock keeps the
	// order even if one retries while another is still being handled.
	c.txnMu.Lock()
	defer c.txnMu.Unlock()
	if e := log.Debug(); e.Enabled() {
		e.Array("event_ids", txnEventIDs(&txn)).Int("ephemeral", len(txn.EphemeralEvents)+len(txn.MSC2409EphemeralEvents)).
			Msg("Appservice transaction")
	}
	if c.txns.has(txnID) {
		log.Debug().Msg("Ignoring repeated transaction")
		writeEmptyJSON(w)
		return
	}
	if len(txn.Events) > 0 {
		c.pushed()
	}
	handling := &Txn{}
	ctx := WithTxn(log.WithContext(context.WithoutCancel(r.Context())), handling)
	for _, evt := range txn.Events {
		if evt != nil {
			evt.Mautrix.EventSource = event.SourceTimeline
			c.handleEvent(ctx, evt)
		}
	}
	ephemeral := txn.EphemeralEvents
	if ephemeral == nil {
		ephemeral = txn.MSC2409EphemeralEvents
	}
	for _, evt := range ephemeral {
		if evt != nil {
			evt.Mautrix.EventSource = event.SourceEphemeral
			evt.Type.Class = event.EphemeralEventType
			c.handleEvent(ctx, evt)
		}
	}
	wctx, cancel := context.WithTimeout(ctx, TxnTimeout)
	defer cancel()
	if err = handling.Finish(wctx); err != nil {
		// Not acknowledged: the homeserver sends it again, and what was
		// handled already is recognised then.
		log.Warn().Err(err).Msg("Transaction not fully handled; asking the homeserver to retry it")
		mautrix.RespError{ErrCode: "M_UNKNOWN", Err: "Not all events could be bridged yet; retry later",
			StatusCode: http.StatusServiceUnavailable}.Write(w)
		return
	}
	c.txns.add(txnID)
	writeEmptyJSON(w)
	log.Debug().Msg("Appservice transaction handled")
}

// handleEvent parses an event's content and hands it on. Room events need
// an ID and a room; ephemeral events only a room, presence only a sender.
func (c *Connector) handleEvent(ctx context.Context, evt *event.Event) {
	presence := evt.Type.Class == event.EphemeralEventType && evt.Type.Type == event.EphemeralEventPresence.Type
	if presence && evt.Sender == "" || !presence && (evt.RoomID == "" || (evt.ID == "" && evt.Type.Class != event.EphemeralEventType)) {
		return
	}
	evt.Mautrix.ReceivedAt = time.Now()
	switch {
	case evt.Type.Class == event.EphemeralEventType:
	case evt.StateKey != nil:
		evt.Type.Class = event.StateEventType
	default:
		evt.Type.Class = event.MessageEventType
	}
	if err := evt.Content.ParseRaw(evt.Type); err != nil && !errors.Is(err, event.ErrUnsupportedContentType) &&
		!errors.Is(err, event.ErrContentAlreadyParsed) {
		zerolog.Ctx(ctx).Warn().Err(err).Stringer("event_id", evt.ID).Str("event_type", evt.Type.Type).
			Msg("Failed to parse event content")
		return
	}
	if evt.Type.IsState() {
		mautrix.UpdateStateStore(ctx, c.AS.StateStore, evt)
	}
	if c.decrypts() && evt.Type.Class != event.EphemeralEventType {
		if c.queueBehindKey(ctx, evt) {
			return // its room waits for a key (keywait.go)
		}
		decrypted, err := c.cryptoEvent(ctx, evt, 0)
		if errors.Is(err, errNoKeyYet) {
			c.waitForKey(ctx, evt, true)
			return
		}
		if err != nil {
			c.undecryptable(ctx, evt, err)
			return
		}
		evt = decrypted
	}
	c.handler.HandleMatrixEvent(ctx, evt)
}

// txnEventIDs lists the IDs of a transaction's room events, for the log.
func txnEventIDs(txn *appservice.Transaction) *zerolog.Array {
	ids := zerolog.Arr()
	for _, evt := range txn.Events {
		if evt != nil {
			ids.Str(evt.ID.String())
		}
	}
	return ids
}

func writeEmptyJSON(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write([]byte("{}"))
}

// recentSet remembers the last n strings added.
type recentSet struct {
	set  map[string]struct{}
	ring []string
	next int
}

func newRecentSet(n int) *recentSet {
	return &recentSet{set: make(map[string]struct{}, n), ring: make([]string, n)}
}

func (s *recentSet) has(v string) bool { _, ok := s.set[v]; return ok }

func (s *recentSet) add(v string) {
	if s.has(v) {
		return
	}
	delete(s.set, s.ring[s.next])
	s.ring[s.next] = v
	s.set[v] = struct{}{}
	s.next = (s.next + 1) % len(s.ring)
}

// Intent returns the client that acts as userID.
func (c *Connector) Intent(userID id.UserID) *appservice.IntentAPI { return c.AS.Intent(userID) }

// Bot returns the client that acts as the bridge bot.
func (c *Connector) Bot() *appservice.IntentAPI { return c.AS.BotIntent() }
