package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/mxpp/mxpp/database"
	"github.com/mxpp/mxpp/testenv"
)

// stack is Dendrite, Prosody and the bridge on loopback.
type stack struct {
	*testenv.Stack
	// MetricsPort serves the bridge's /metrics and profiler.
	MetricsPort int
}

// newStack prepares directories and ports; fast is a directory on tmpfs
// for the homeserver's data, or "" to keep it with the rest.
func newStack(root, fast string) (*stack, error) {
	hsDir := ""
	if fast != "" {
		var err error
		if hsDir, err = os.MkdirTemp(fast, "mxpp-bench-hs-"); err != nil {
			return nil, err
		}
	}
	s, err := testenv.New(root, "mxpp-bench-", hsDir)
	if err != nil {
		return nil, err
	}
	return &stack{Stack: s, MetricsPort: testenv.FreePort()}, nil
}

// start builds the bridge, writes its config and registration, and starts
// the servers with users xmppUsers (password = name+"pw"). syncFallback is
// the bridge's bridge.sync_fallback.
func (s *stack) start(xmppUsers []string, db database.Config, syncFallback string) error {
	if err := s.Build(); err != nil {
		return err
	}
	cfg := fmt.Sprintf(`homeserver:
  address: %s
  domain: %s
appservice:
  address: http://127.0.0.1:%d
  hostname: 127.0.0.1
  port: %d
xmpp:
  server: 127.0.0.1:%d
  domain: %s
  secret: %s
database:
  type: %s
  uri: %s
bridge:
  exposure: public
  history_messages: 0
  sync_fallback: %s
metrics:
  listen: 127.0.0.1:%d
  profiling: true
logging:
  level: info
  format: json
`, s.HSURL, s.HSDomain, s.ASPort, s.ASPort, s.CompPort, s.CompDomain, s.Secret, db.Type, db.URI, syncFallback, s.MetricsPort)
	if err := s.Configure(cfg); err != nil {
		return err
	}
	s.Users = xmppUsers
	s.ExtraComponents = []string{sessionsDomain + ":" + sessionsSecret}
	if err := s.StartXMPP(); err != nil {
		return err
	}
	return s.StartHomeserver()
}

// startBridge runs the bridge and returns how long it took to be ready.
func (s *stack) startBridge() (time.Duration, error) { return s.StartBridge(time.Minute) }

func (s *stack) stop(keep bool) {
	s.Stop(keep)
	if keep {
		fmt.Fprintln(os.Stderr, "kept", s.Dir, s.HSDir)
	}
}

// proc is what /proc says of the bridge process.
type proc struct {
	cpu    time.Duration // user + system
	rss    int64         // bytes
	peak   int64         // bytes, VmHWM
	exists bool
}

func (s *stack) proc() proc {
	pid := s.BridgePID()
	if pid == 0 {
		return proc{}
	}
	var p proc
	p.cpu, p.exists = processCPU(strconv.Itoa(pid))
	if status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid)); err == nil {
		for _, line := range strings.Split(string(status), "\n") {
			f := strings.Fields(line)
			if len(f) < 2 {
				continue
			}
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			switch f[0] {
			case "VmRSS:":
				p.rss = kb << 10
			case "VmHWM:":
				p.peak = kb << 10
			}
		}
	}
	return p
}

func waitCtx(d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), d)
}

// heap collects garbage in the bridge and returns its live heap in bytes
// (the runtime's HeapAlloc); with a path, it also writes a heap profile
// there.
func (s *stack) heap(path string) (int64, error) {
	get := func(query string) ([]byte, error) {
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/debug/pprof/heap?gc=1%s", s.MetricsPort, query))
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return nil, fmt.Errorf("heap profile: %s", resp.Status)
		}
		return io.ReadAll(resp.Body)
	}
	if path != "" {
		data, err := get("")
		if err != nil {
			return 0, err
		}
		if err = os.WriteFile(path, data, 0o644); err != nil {
			return 0, err
		}
	}
	text, err := get("&debug=1")
	if err != nil {
		return 0, err
	}
	for line := range strings.Lines(string(text)) {
		if v, ok := strings.CutPrefix(line, "# HeapAlloc = "); ok {
			return strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		}
	}
	return 0, errors.New("heap profile: no HeapAlloc line")
}

// profile fetches a CPU profile of the bridge over the next d into path,
// in the background; the returned function waits for it.
func (s *stack) profile(path string, d time.Duration) func() error {
	done := make(chan error, 1)
	go func() {
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/debug/pprof/profile?seconds=%d", s.MetricsPort, int(d.Seconds())))
		if err != nil {
			done <- err
			return
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			done <- fmt.Errorf("profile: %s", resp.Status)
			return
		}
		f, err := os.Create(path)
		if err == nil {
			_, err = io.Copy(f, resp.Body)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
		}
		done <- err
	}()
	return func() error { return <-done }
}
