package bridge

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"time"
)

// registerHealth adds liveness and readiness endpoints to the appservice
// listener: /health answers while the process serves HTTP, /ready only
// while the component link is up, the bridge is the only connection for its
// domain at the XMPP server, and the homeserver answers.
func (b *Bridge) registerHealth(mux *http.ServeMux) {
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"ok": true})
	})
	mux.HandleFunc("GET /ready", func(w http.ResponseWriter, r *http.Request) {
		xmppUp, shared, hsUp := b.XMPP.Connected(), b.XMPP.Shared(), b.homeserverUp(r.Context())
		ok := xmppUp && shared == "" && hsUp
		status := http.StatusOK
		if !ok {
			status = http.StatusServiceUnavailable
		}
		answer := map[string]any{"ok": ok, "xmpp_connected": xmppUp, "homeserver_reachable": hsUp}
		if shared != "" {
			answer["xmpp_shared"] = shared
		}
		if e := b.XMPP.LastError(); e != "" && !xmppUp {
			answer["xmpp_error"] = e
		}
		writeJSON(w, status, answer)
	})
}

// metricsMux serves /metrics on a listener of its own, and the profiler
// when metrics.profiling asks for it.
func (b *Bridge) metricsMux() *http.ServeMux {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", b.metrics.handler())
	if b.Config.Metrics.Profiling {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	return mux
}

// homeserverUp reports whether the homeserver answers, asking it at most
// every few seconds.
func (b *Bridge) homeserverUp(ctx context.Context) bool {
	b.hsMu.Lock()
	defer b.hsMu.Unlock()
	if time.Since(b.hsChecked) < 5*time.Second {
		return b.hsUp
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	_, err := b.Matrix.Bot().Versions(ctx)
	b.hsUp, b.hsChecked = err == nil, time.Now()
	return b.hsUp
}

// serveMetrics serves /metrics on the appservice listener or its own.
func (b *Bridge) serveMetrics() error {
	if !b.Config.Metrics.Enabled {
		return nil
	}
	b.metrics = newMetrics(b)
	if b.Config.Metrics.Listen == "" {
		b.Matrix.Mux.Handle("GET /metrics", b.metrics.handler())
		return nil
	}
	ln, err := net.Listen("tcp", b.Config.Metrics.Listen)
	if err != nil {
		return fmt.Errorf("metrics.listen: %w", err)
	}
	srv := &http.Server{Handler: b.metricsMux(), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-b.ctx.Done()
		_ = srv.Close()
	}()
	go func() { _ = srv.Serve(ln) }()
	return nil
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// HealthCheck asks a health endpoint, for container health checks where no
// HTTP client is installed.
func HealthCheck(url string) error {
	client := &http.Client{Timeout: 5 * time.Second}
	resp, err := client.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s answered %s", url, resp.Status)
	}
	return nil
}
