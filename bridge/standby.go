package bridge

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strconv"
	"time"
)

// takeInstance makes this process the bridge's one active process on its
// database (database.AcquireInstance). On SQLite a second process stops
// here with an error. On PostgreSQL it waits as a standby, connected to
// nothing but the database and answering only /health (200) and /ready
// (503, "standby") on metrics.listen, or on the appservice address if that
// is free, until the active process stops, dies or loses the database;
// then it goes on starting. An active process that loses its lock's
// connection stops (Failed), since the standby takes over.
func (b *Bridge) takeInstance(ctx context.Context) error {
	name := b.Config.Appservice.ID + "\x00" + b.Config.XMPP.Domain
	var standby *http.Server
	var since time.Time
	lock, err := b.DB.AcquireInstance(ctx, name, b.Config.Database.FailoverTimeout, b.Log, func() {
		since = time.Now()
		b.Log.Info().Msg("Another process runs this bridge on the database; waiting as its standby")
		standby = b.serveStandby()
	})
	if standby != nil {
		_ = standby.Close()
	}
	if err != nil {
		return err
	}
	b.instance = lock
	if !since.IsZero() {
		b.Log.Info().Stringer("standby_for", time.Since(since).Round(time.Millisecond)).Msg("The active process let go; taking over")
	}
	go func() {
		select {
		case <-lock.Lost():
			select {
			case b.failed <- errors.New("lost the database connection that holds the instance lock; a standby takes over"):
			default:
			}
		case <-b.ctx.Done():
		}
	}()
	return nil
}

// serveStandby answers health checks while the process waits; nil when
// no address is free for it.
func (b *Bridge) serveStandby() *http.Server {
	addr := b.Config.Metrics.Listen
	if addr == "" || !b.Config.Metrics.Enabled {
		addr = net.JoinHostPort(b.Config.Appservice.Hostname, strconv.Itoa(int(b.Config.Appservice.Port)))
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		b.Log.Info().Err(err).Msg("No health endpoint while on standby: set metrics.listen to an address of this process")
		return nil
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"ok": true, "standby": true})
	})
	mux.HandleFunc("GET /ready", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusServiceUnavailable, map[string]any{"ok": false, "standby": true})
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	b.Log.Info().Str("address", addr).Msg("Answering /health and /ready while on standby")
	return srv
}
