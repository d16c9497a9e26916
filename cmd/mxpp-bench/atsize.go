package main

// At size: the bridge restarted on the rows of a large deployment. The
// hosted rooms are real rooms on the homeserver (made by the bridge's bot,
// as exposing does), so that each portal loads its room as it would; the
// occupant sessions are at a component of the benchmark's own that answers
// the bridge's pings as live clients do, so that none is dropped as gone.

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
	"gopkg.in/yaml.v3"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"

	"github.com/mxpp/mxpp/database"
	"github.com/mxpp/mxpp/xmpp"
)

// sessionsDomain is the benchmark's component that stands in for the
// servers of the stored occupant sessions.
const (
	sessionsDomain = "sessions.xmpp.test"
	sessionsSecret = "sessionssecret"
)

// responder answers every IQ to its domain with a result: a live session
// answering the bridge's ping.
type responder struct {
	comp  *xmpp.Component
	pings atomic.Int64
}

func (r *responder) HandleMessage(context.Context, *xmpp.Message)   {}
func (r *responder) HandlePresence(context.Context, *xmpp.Presence) {}
func (r *responder) HandleConnected(context.Context)                {}
func (r *responder) HandleIQ(ctx context.Context, iq *xmpp.IQ) {
	r.pings.Add(1)
	r.comp.Reply(ctx, iq, nil, nil)
}

// startResponder connects the sessions' component.
func (b *bench) startResponder(ctx context.Context) (*responder, error) {
	r := &responder{}
	comp, err := xmpp.NewComponent(xmpp.Config{Server: fmt.Sprintf("127.0.0.1:%d", b.s.CompPort), Domain: sessionsDomain,
		Secret: sessionsSecret}, r, zerolog.Nop())
	if err != nil {
		return nil, err
	}
	r.comp = comp
	go comp.Run(ctx)
	wctx, cancel := waitCtx(30 * time.Second)
	defer cancel()
	if err = comp.WaitConnected(wctx); err != nil {
		return nil, fmt.Errorf("sessions' component: %w", err)
	}
	return r, nil
}

// createRooms makes n rooms as the bridge's bot, a few at a time, and
// returns their IDs.
func (b *bench) createRooms(n int) ([]id.RoomID, error) {
	data, err := os.ReadFile(b.s.Registration)
	if err != nil {
		return nil, err
	}
	var reg struct {
		ASToken         string `yaml:"as_token"`
		SenderLocalpart string `yaml:"sender_localpart"`
	}
	if err = yaml.Unmarshal(data, &reg); err != nil {
		return nil, err
	}
	bot, err := mautrix.NewClient(b.s.HSURL, id.NewUserID(reg.SenderLocalpart, b.s.HSDomain), reg.ASToken)
	if err != nil {
		return nil, err
	}
	rooms := make([]id.RoomID, n)
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int(next.Add(1)) - 1; i < n; i = int(next.Add(1)) - 1 {
				resp, err := bot.CreateRoom(context.Background(), &mautrix.ReqCreateRoom{Preset: "private_chat",
					Name: fmt.Sprintf("Synthetic %d", i)})
				if err != nil {
					errs <- fmt.Errorf("creating room %d: %w", i, err)
					return
				}
				rooms[i] = resp.RoomID
				if (i+1)%1000 == 0 {
					fmt.Fprintf(os.Stderr, "    %d rooms\n", i+1)
				}
			}
		}()
	}
	wg.Wait()
	select {
	case err := <-errs:
		return nil, err
	default:
	}
	return rooms, nil
}

// addRows stores a large deployment's rows: a portal for each of rooms,
// o.puppets puppets and o.sessions occupant sessions spread over the
// rooms, the first puppets' at the sessions' component.
func (b *bench) addRows(rooms []id.RoomID) error {
	ctx := context.Background()
	db, err := database.Open(ctx, b.db, zerolog.Nop())
	if err != nil {
		return err
	}
	defer db.Close()
	now := time.Now()
	return db.DoTxn(ctx, nil, func(ctx context.Context) error {
		for i, roomID := range rooms {
			err := db.Portal.Insert(ctx, &database.Portal{RoomID: roomID, Alias: id.RoomAlias(fmt.Sprintf("#synthetic%d:%s", i, b.s.HSDomain)),
				MUCLocal: fmt.Sprintf("#synthetic%d#%s", i, b.s.HSDomain), CreatedAt: now})
			if err != nil {
				return err
			}
		}
		for i := range b.o.puppets {
			bare := fmt.Sprintf("synthetic%d@remote%d.example", i, i%100)
			if i < b.o.sessions {
				bare = fmt.Sprintf("synthetic%d@%s", i, sessionsDomain)
			}
			err := db.Puppet.Upsert(ctx, &database.Puppet{JID: bare, MXID: id.UserID(fmt.Sprintf("@_xmpp_synthetic%d=40x:%s", i, b.s.HSDomain)),
				Registered: true, CreatedAt: now})
			if err != nil {
				return err
			}
		}
		for i := range b.o.sessions {
			bare := fmt.Sprintf("synthetic%d@%s", i, sessionsDomain)
			err := db.Occupant.Upsert(ctx, &database.Occupant{RoomID: rooms[i%len(rooms)], FullJID: bare + "/s", UserJID: bare,
				Nick: fmt.Sprintf("Synthetic %d", i), JoinedAt: now})
			if err != nil {
				return err
			}
		}
		return nil
	})
}

// waitRestored waits for the bridge's log line, past offset in its log,
// that the portals were restored after it connected, and returns how long
// the restore took.
func (b *bench) waitRestored(offset int64, timeout time.Duration) (time.Duration, error) {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		f, err := os.Open(b.s.LogPath())
		if err != nil {
			return 0, err
		}
		if _, err = f.Seek(offset, io.SeekStart); err != nil {
			_ = f.Close()
			return 0, err
		}
		sc := bufio.NewScanner(f)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			if !strings.Contains(sc.Text(), "Portals restored") {
				continue
			}
			var line struct {
				Took float64 `json:"took"` // milliseconds
			}
			_ = f.Close()
			if err = json.Unmarshal(sc.Bytes(), &line); err != nil {
				return 0, err
			}
			return time.Duration(line.Took * float64(time.Millisecond)), nil
		}
		_ = f.Close()
		time.Sleep(200 * time.Millisecond)
	}
	return 0, fmt.Errorf("the bridge did not restore its portals within %s", timeout)
}

// startRestored starts the bridge and waits until it restored its portals;
// it returns how long the bridge took to be ready and the restore took.
func (b *bench) startRestored() (ready, restore time.Duration, err error) {
	var offset int64
	if st, err := os.Stat(b.s.LogPath()); err == nil {
		offset = st.Size()
	}
	if ready, err = b.s.startBridge(); err != nil {
		return 0, 0, err
	}
	restore, err = b.waitRestored(offset, 15*time.Minute)
	return ready, restore, err
}

// rejoin connects the XMPP clients again and joins them to their rooms.
func (b *bench) rejoin() error {
	b.clients = b.clients[:0]
	for i := range b.o.clients {
		if err := b.joinClient(i); err != nil {
			return err
		}
	}
	return nil
}

// atSize restarts the bridge on a large deployment's rows and measures its
// start, its restore of the portals, its memory, and the bridged paths
// again, as at the start of the run.
func (b *bench) atSize(rooms []id.RoomID) error {
	for _, c := range b.clients {
		c.close()
	}
	step(fmt.Sprintf("at size: storing %d portals, %d puppets, %d occupant sessions", len(rooms), b.o.puppets, b.o.sessions))
	if err := b.addRows(rooms); err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	resp, err := b.startResponder(ctx)
	if err != nil {
		return err
	}
	step("at size: starting the bridge, waiting for it to restore its portals")
	ready, took, err := b.startRestored()
	if err != nil {
		return err
	}
	r := &b.rep.AtSize
	r.ReadySeconds, r.RestoreSeconds = ready.Seconds(), took.Seconds()
	r.SessionsPinged = resp.pings.Load()
	r.RSSMB = mb(b.s.proc().rss)
	live, err := b.s.heap(b.profilePath("-at-size-heap"))
	if err != nil {
		return err
	}
	r.HeapLiveMB = mb(live)

	step("at size: bridged paths")
	if err = b.rejoin(); err != nil {
		return err
	}
	run, err := b.bridgedRuns("s", "-at-size")
	if err != nil {
		return err
	}
	r.CPUSecondsPer1000, r.PeakRSSMB = run.cpuPer1000, run.peakMB

	if b.o.memLimit != "" {
		if err = b.withMemLimit(); err != nil {
			return err
		}
	}

	// The homeserver now holds the rooms made for this part: its share of
	// the time at size is its raw paths'.
	step("at size: raw paths (bridge stopped, a do-nothing appservice in its place)")
	b.s.StopBridge(false)
	srv, err := b.nullAppservice()
	if err != nil {
		return err
	}
	defer srv.Close()
	raw, err := b.rawRuns("s")
	if err != nil {
		return err
	}
	r.Throughput, r.Latency, r.Ratios = compare(run, raw)
	return nil
}

// withMemLimit restarts the bridge at size with GOMEMLIMIT set to
// -memlimit, and measures its restore, memory and CPU per message again:
// what the operator's lever costs.
func (b *bench) withMemLimit() error {
	step("at size: the bridge restarted with GOMEMLIMIT=" + b.o.memLimit)
	for _, c := range b.clients {
		c.close()
	}
	b.s.StopBridge(false)
	if err := os.Setenv("GOMEMLIMIT", b.o.memLimit); err != nil {
		return err
	}
	_, took, err := b.startRestored()
	_ = os.Unsetenv("GOMEMLIMIT") // the bridge has it; later starts do not
	if err != nil {
		return err
	}
	m := &memLimitResult{Limit: b.o.memLimit}
	m.RestoreSeconds, m.RSSMB = took.Seconds(), mb(b.s.proc().rss)
	if err = b.rejoin(); err != nil {
		return err
	}
	run, err := b.bridgedRuns("g", "-memlimit")
	if err != nil {
		return err
	}
	m.CPUSecondsPer1000, m.PeakRSSMB = run.cpuPer1000, run.peakMB
	m.ToMatrixPerSecond, m.ToXMPPPerSecond = run.xm.PerSecond, run.mx.PerSecond
	b.rep.AtSize.MemLimit = m
	return nil
}

// memLimitResult is the bridge at size under a soft memory limit.
type memLimitResult struct {
	Limit             string  `json:"gomemlimit"`
	RestoreSeconds    float64 `json:"restore_seconds"`
	RSSMB             float64 `json:"rss_mb"`
	PeakRSSMB         float64 `json:"peak_rss_mb"`
	CPUSecondsPer1000 float64 `json:"cpu_seconds_per_1000_messages"`
	ToMatrixPerSecond float64 `json:"xmpp_to_matrix_messages_per_second"`
	ToXMPPPerSecond   float64 `json:"matrix_to_xmpp_messages_per_second"`
}

// startProfile starts a CPU profile of the bridge over the next
// -profile-for if -profile asks for one, written to its file with
// suffix before the extension; the function it returns waits for it.
func (b *bench) startProfile(suffix string) func() error {
	if b.o.profile == "" {
		return func() error { return nil }
	}
	return b.s.profile(b.profilePath(suffix), b.o.profileFor)
}

// profilePath is -profile's file with suffix before its extension, or ""
// if no profile was asked for.
func (b *bench) profilePath(suffix string) string {
	if b.o.profile == "" {
		return ""
	}
	ext := filepath.Ext(b.o.profile)
	return strings.TrimSuffix(b.o.profile, ext) + suffix + ext
}
