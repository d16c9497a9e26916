// Command mxpp-bench measures the bridge against the raw paths it adds to,
// on a real Dendrite and Prosody on loopback, in one run:
//
//   - XMPP → Matrix: XMPP clients send into bridged rooms, a Matrix client
//     receives; raw: Matrix clients send the same to the homeserver.
//   - Matrix → XMPP: Matrix clients send, the XMPP clients in the rooms
//     receive; raw: the slower of the homeserver pushing the same messages
//     to a do-nothing appservice, and a component sending them through
//     Prosody to the same XMPP clients.
//   - the bridge's CPU time per 1,000 messages, peak and idle RSS, and
//     start-to-ready time;
//   - at size: the bridge restarted on the rows of a large deployment
//     (-portals hosted rooms, real rooms on the homeserver; -puppets
//     puppets; -sessions occupant sessions at a component of the
//     benchmark's that answers pings as live clients do): start to ready,
//     how long restoring every portal takes, RSS, and the bridged paths
//     again, for CPU per message and latency at that size.
//
// -postgres runs the bridge on a new database on a PostgreSQL server
// instead of SQLite; -profile writes CPU profiles of the bridge.
//
// It prints a table and writes the numbers as JSON. Run it from the
// repository root: go run -tags goolm ./cmd/mxpp-bench.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/appservice"
	"maunium.net/go/mautrix/id"
	"mellium.im/xmpp/jid"

	"github.com/mxpp/mxpp/database"
	"github.com/mxpp/mxpp/database/dbtest"
	"github.com/mxpp/mxpp/xmpp"
)

type options struct {
	messages, clients, rooms int
	paced                    int
	rate                     float64
	portals, puppets         int
	sessions                 int
	postgres                 string
	hsPostgres               bool
	jsonPath, tmpfs          string
	profile                  string
	memLimit                 string
	syncFallback             string
	profileFor               time.Duration
	keep                     bool
}

func main() {
	var o options
	flag.IntVar(&o.messages, "n", 600, "messages per direction and path in the throughput runs")
	flag.IntVar(&o.clients, "clients", 10, "XMPP clients (and as many Matrix senders)")
	flag.IntVar(&o.rooms, "rooms", 5, "bridged rooms")
	flag.IntVar(&o.paced, "paced", 60, "messages per path in the latency runs at moderate load")
	flag.Float64Var(&o.rate, "rate", 20, "messages per second in the latency runs")
	flag.IntVar(&o.portals, "portals", 10000, "hosted rooms stored for the figures at size (made on the homeserver)")
	flag.IntVar(&o.puppets, "puppets", 100000, "puppets stored for the figures at size")
	flag.IntVar(&o.sessions, "sessions", 50000, "occupant sessions stored for the figures at size (spread over the rooms, all answering pings)")
	flag.StringVar(&o.syncFallback, "sync-fallback", "auto", "the bridge's bridge.sync_fallback (auto, on, off)")
	flag.StringVar(&o.memLimit, "memlimit", "140MiB", "at size, restart the bridge with this GOMEMLIMIT and measure it again (empty: skip)")
	flag.StringVar(&o.postgres, "postgres", "", "admin URI of a PostgreSQL server: the bridge runs on a new database there (empty: SQLite)")
	flag.BoolVar(&o.hsPostgres, "hs-postgres", false, "Dendrite too keeps its tables on the -postgres server (default: SQLite files)")
	flag.StringVar(&o.jsonPath, "json", "bench-result.json", "where to write the results as JSON (empty: nowhere)")
	flag.StringVar(&o.tmpfs, "tmpfs", "/dev/shm", "tmpfs directory for the homeserver's data (empty: a temporary directory)")
	flag.StringVar(&o.profile, "profile", "", "write a CPU profile of the bridge from the start of the bridged runs to this file (at size: with -at-size before its extension)")
	flag.DurationVar(&o.profileFor, "profile-for", 20*time.Second, "how long each profile runs")
	flag.BoolVar(&o.keep, "keep", false, "keep the servers' directories and logs")
	flag.Parse()
	if o.clients < o.rooms || o.rooms < 1 || o.messages < o.clients {
		fmt.Fprintln(os.Stderr, "mxpp-bench: need -n ≥ -clients ≥ -rooms ≥ 1")
		os.Exit(2)
	}
	if o.hsPostgres && o.postgres == "" {
		fmt.Fprintln(os.Stderr, "mxpp-bench: -hs-postgres needs -postgres")
		os.Exit(2)
	}
	if o.portals < 1 || o.sessions > o.puppets {
		fmt.Fprintln(os.Stderr, "mxpp-bench: need -portals ≥ 1 and -puppets ≥ -sessions")
		os.Exit(2)
	}
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "mxpp-bench:", err)
		os.Exit(1)
	}
}

// result is one measured path.
type result struct {
	Path       string  `json:"path"`
	Messages   int     `json:"messages"`
	Deliveries int     `json:"deliveries"`
	Seconds    float64 `json:"seconds"`
	PerSecond  float64 `json:"messages_per_second"`
	P50ms      float64 `json:"p50_ms"`
	P95ms      float64 `json:"p95_ms"`
	P99ms      float64 `json:"p99_ms"`
	OutOfOrder int     `json:"out_of_order"`
	// MachineBusy is the share of all cores in use during a throughput
	// run; HomeserverCPUms the homeserver's CPU time per message then.
	MachineBusy     float64 `json:"machine_busy,omitempty"`
	HomeserverCPUms float64 `json:"homeserver_cpu_ms_per_message,omitempty"`
}

type report struct {
	Options struct {
		Messages, Clients, Rooms, Paced int
		Rate                            float64
		Portals, Puppets, Sessions      int
		Database, SyncFallback          string
		HomeserverDatabase              string `json:"homeserver_database"`
	} `json:"options"`
	Throughput []result `json:"throughput"`
	Latency    []result `json:"latency"`
	Ratios     ratios   `json:"ratios"`
	Bridge     struct {
		CPUSecondsPer1000 float64 `json:"cpu_seconds_per_1000_messages"`
		PeakRSSMB         float64 `json:"peak_rss_mb"`
		IdleRSSMB         float64 `json:"idle_rss_mb"`
		ReadySeconds      float64 `json:"ready_seconds"`
	} `json:"bridge"`
	// Failover is the standby's takeover (PostgreSQL only).
	Failover *failoverResult `json:"failover,omitempty"`
	// AtSize is the bridge restarted on a large deployment's rows.
	AtSize struct {
		ReadySeconds      float64  `json:"ready_seconds"`
		RestoreSeconds    float64  `json:"restore_seconds"`
		SessionsPinged    int64    `json:"sessions_pinged"`
		RSSMB             float64  `json:"rss_mb"`
		HeapLiveMB        float64  `json:"heap_live_mb"`
		PeakRSSMB         float64  `json:"peak_rss_mb"`
		CPUSecondsPer1000 float64  `json:"cpu_seconds_per_1000_messages"`
		Throughput        []result `json:"throughput"`
		Latency           []result `json:"latency"`
		Ratios            ratios   `json:"ratios"`
		// MemLimit is the bridge at size again under -memlimit.
		MemLimit *memLimitResult `json:"memlimit,omitempty"`
	} `json:"at_size"`
}

// ratios compare the bridged paths with the raw ones.
type ratios struct {
	ToMatrixThroughput float64 `json:"xmpp_to_matrix_throughput"`
	ToXMPPThroughput   float64 `json:"matrix_to_xmpp_throughput"`
	ToMatrixOverheadMs float64 `json:"xmpp_to_matrix_p50_overhead_ms"`
	ToXMPPOverheadMs   float64 `json:"matrix_to_xmpp_p50_overhead_ms"`
}

// bench is one run's state.
type bench struct {
	o       options
	s       *stack
	rooms   []id.RoomID
	mucs    []jid.JID
	senders []*mxClient
	clients []*xmppClient
	rec     *arrivals
	rep     report
	db      database.Config
}

func run(o options) error {
	root, err := os.Getwd()
	if err != nil {
		return err
	}
	if _, err = os.Stat(filepath.Join(root, "testenv", "start-homeserver.sh")); err != nil {
		return errors.New("run it from the repository root")
	}
	if o.tmpfs != "" {
		if st, err := os.Stat(o.tmpfs); err != nil || !st.IsDir() {
			o.tmpfs = ""
		}
	}
	s, err := newStack(root, o.tmpfs)
	if err != nil {
		return err
	}
	defer s.stop(o.keep)
	b := &bench{o: o, s: s, rec: newArrivals()}
	b.db = database.Config{Type: "sqlite", URI: "file:" + filepath.Join(s.Dir, "mxpp.db")}
	if o.postgres != "" {
		uri, drop, err := dbtest.NewPostgres(o.postgres)
		if err != nil {
			return fmt.Errorf("-postgres: %w", err)
		}
		defer drop()
		b.db = database.Config{Type: "postgres", URI: uri}
	}
	if o.hsPostgres {
		uri, drop, err := dbtest.NewPostgres(o.postgres)
		if err != nil {
			return fmt.Errorf("-hs-postgres: %w", err)
		}
		// Dropped after the stack stops (defers run last in, first out).
		defer drop()
		s.HSDatabase = uri
	}
	r := &b.rep.Options
	r.Messages, r.Clients, r.Rooms, r.Paced, r.Rate, r.Portals, r.Puppets = o.messages, o.clients, o.rooms, o.paced, o.rate, o.portals, o.puppets
	r.Sessions, r.Database, r.SyncFallback = o.sessions, b.db.Type, o.syncFallback
	r.HomeserverDatabase = "sqlite"
	if o.hsPostgres {
		r.HomeserverDatabase = "postgres"
	}

	step("starting Dendrite, Prosody and the bridge")
	var users []string
	for i := range o.clients {
		users = append(users, fmt.Sprintf("bench%d", i))
	}
	if err = s.start(users, b.db, o.syncFallback); err != nil {
		return err
	}
	ready, err := s.startBridge()
	if err != nil {
		return err
	}
	b.rep.Bridge.ReadySeconds = ready.Seconds()
	b.rep.Bridge.IdleRSSMB = mb(s.proc().rss)
	if err = b.setup(); err != nil {
		return err
	}

	step("bridged paths")
	bridged, err := b.bridgedRuns("b", "")
	if err != nil {
		return err
	}
	b.rep.Bridge.CPUSecondsPer1000, b.rep.Bridge.PeakRSSMB = bridged.cpuPer1000, bridged.peakMB

	if b.db.Type == "postgres" {
		step("failover: a standby process, the active one killed with SIGKILL")
		fo, err := b.failover()
		if err != nil {
			return fmt.Errorf("failover: %w", err)
		}
		b.rep.Failover = &fo
	}

	step("raw paths (bridge stopped, a do-nothing appservice in its place)")
	s.StopBridge(false)
	// The homeserver keeps pushing to the appservice as it does while the
	// bridge runs, so the raw paths load it the same way.
	srv, err := b.nullAppservice()
	if err != nil {
		return err
	}
	raw, err := b.rawRuns("")
	if err != nil {
		return err
	}
	// The rooms are made while the do-nothing appservice takes what the
	// homeserver pushes of them, so that the bridge does not get it later.
	step(fmt.Sprintf("at size: making %d rooms on the homeserver", o.portals))
	rooms, err := b.createRooms(o.portals)
	if err != nil {
		return err
	}
	_ = srv.Close()
	if err = b.atSize(rooms); err != nil {
		return err
	}

	b.rep.Throughput, b.rep.Latency, b.rep.Ratios = compare(bridged, raw)
	b.print(os.Stdout)
	if o.jsonPath != "" {
		data, _ := json.MarshalIndent(&b.rep, "", "  ")
		if err = os.WriteFile(o.jsonPath, append(data, '\n'), 0o644); err != nil {
			return err
		}
	}
	return nil
}

func step(s string) { fmt.Fprintln(os.Stderr, "==>", s) }

// bridgedRun is the bridged paths measured once: both ways at once and
// paced, the bridge's CPU per 1,000 messages over the first two, and its
// peak RSS after them.
type bridgedRun struct {
	xm, mx, lxm, lmx   result
	cpuPer1000, peakMB float64
}

// bridgedRuns measures the bridged paths, its bodies named with prefix, and
// profiles the throughput runs (-profile, with suffix before the file's
// extension).
func (b *bench) bridgedRuns(prefix, suffix string) (bridgedRun, error) {
	var r bridgedRun
	var err error
	profiled := b.startProfile(suffix)
	before := b.s.proc()
	if r.xm, err = b.withCPU(func() (result, error) { return b.xmppToMatrix(prefix+"xm", b.o.messages, 0) }); err != nil {
		return r, err
	}
	if r.mx, err = b.withCPU(func() (result, error) { return b.matrixToXMPP(prefix+"mx", b.o.messages, 0) }); err != nil {
		return r, err
	}
	after := b.s.proc()
	r.cpuPer1000 = (after.cpu - before.cpu).Seconds() / float64(2*b.o.messages) * 1000
	if err = profiled(); err != nil {
		return r, err
	}
	if r.lxm, err = b.xmppToMatrix("l"+prefix+"xm", b.o.paced, b.o.rate); err != nil {
		return r, err
	}
	if r.lmx, err = b.matrixToXMPP("l"+prefix+"mx", b.o.paced, b.o.rate); err != nil {
		return r, err
	}
	r.peakMB = mb(b.s.proc().peak)
	return r, nil
}

// rawRun is the raw paths measured once, at once and paced: Matrix
// clients to the homeserver, the homeserver to a do-nothing appservice, and
// a component through Prosody to the clients.
type rawRun struct {
	xm, lxm              result
	as, comp, las, lcomp result
}

// rawRuns measures the raw paths, their bodies named with prefix, while a
// do-nothing appservice stands in for the bridge.
func (b *bench) rawRuns(prefix string) (rawRun, error) {
	var r rawRun
	var err error
	if r.xm, err = b.withCPU(func() (result, error) { return b.rawMatrix(prefix+"rxm", b.o.messages, 0) }); err != nil {
		return r, err
	}
	if r.lxm, err = b.rawMatrix("l"+prefix+"rxm", b.o.paced, b.o.rate); err != nil {
		return r, err
	}
	if r.as, r.comp, err = b.rawToXMPP(prefix+"raw", b.o.messages, 0); err != nil {
		return r, err
	}
	r.las, r.lcomp, err = b.rawToXMPP("l"+prefix+"raw", b.o.paced, b.o.rate)
	return r, err
}

// compare sets bridged and raw runs side by side: the throughput and
// latency rows, each bridged path before its raw ones, and the ratios
// (Matrix → XMPP against the slower of its two legs).
func compare(bridged bridgedRun, raw rawRun) (throughput, latency []result, ra ratios) {
	rawMX, rawLMX := slower(raw.as, raw.comp), slower(raw.las, raw.lcomp)
	throughput = []result{bridged.xm, raw.xm, bridged.mx, raw.as, raw.comp}
	latency = []result{bridged.lxm, raw.lxm, bridged.lmx, raw.las, raw.lcomp}
	ra.ToMatrixThroughput = bridged.xm.PerSecond / raw.xm.PerSecond
	ra.ToXMPPThroughput = bridged.mx.PerSecond / rawMX.PerSecond
	ra.ToMatrixOverheadMs = bridged.lxm.P50ms - raw.lxm.P50ms
	ra.ToXMPPOverheadMs = bridged.lmx.P50ms - rawLMX.P50ms
	return throughput, latency, ra
}

func mb(b int64) float64 { return float64(b) / (1 << 20) }

func slower(a, b result) result {
	if a.PerSecond < b.PerSecond {
		return a
	}
	return b
}

// setup makes the rooms, the Matrix senders and receiver, and joins the
// XMPP clients.
func (b *bench) setup() error {
	step(fmt.Sprintf("creating %d rooms, %d Matrix senders, %d XMPP clients", b.o.rooms, b.o.clients, b.o.clients))
	observer, err := registerMatrix(b.s.HSURL, "observer")
	if err != nil {
		return err
	}
	ctx := context.Background()
	for i := range b.o.rooms {
		resp, err := observer.c.CreateRoom(ctx, &mautrix.ReqCreateRoom{
			Visibility: "public", Preset: "public_chat", RoomAliasName: fmt.Sprintf("bench%d", i), Name: fmt.Sprintf("Bench %d", i),
		})
		if err != nil {
			return fmt.Errorf("creating a room: %w", err)
		}
		b.rooms = append(b.rooms, resp.RoomID)
		b.mucs = append(b.mucs, jid.MustParse(fmt.Sprintf("#bench%d#%s@%s", i, b.s.HSDomain, b.s.CompDomain)))
	}
	observer.syncInto(ctx, b.rec)
	for i := range b.o.clients {
		u, err := registerMatrix(b.s.HSURL, fmt.Sprintf("sender%d", i))
		if err != nil {
			return err
		}
		if _, err = u.c.JoinRoomByID(ctx, b.rooms[i%b.o.rooms]); err != nil {
			return err
		}
		b.senders = append(b.senders, u)
		if err = b.joinClient(i); err != nil {
			return err
		}
	}
	return nil
}

// joinClient connects XMPP client i and joins it to its room.
func (b *bench) joinClient(i int) error {
	c, err := dialXMPP(b.s.C2SAddr, fmt.Sprintf("bench%d", i), b.s.XMPPDomain, b.rec)
	if err != nil {
		return err
	}
	if err = c.join(b.mucs[i%b.o.rooms], fmt.Sprintf("Bench %d", i)); err != nil {
		return err
	}
	b.clients = append(b.clients, c)
	return nil
}

// pace returns, for message k of a run at rate per second (0: at once),
// when it is due.
func pace(start time.Time, k int, rate float64) time.Time {
	if rate <= 0 {
		return start
	}
	return start.Add(time.Duration(float64(k) / rate * float64(time.Second)))
}

// send runs one sender per client, each with its share of n messages
// named prefix-sender-k, and returns the send times by body.
func (b *bench) send(prefix string, n int, rate float64, do func(i int, body string) error) (map[string]time.Time, error) {
	return b.sendBy(b.o.clients, prefix, n, rate, do)
}

// sendBy is send with a number of senders.
func (b *bench) sendBy(senders int, prefix string, n int, rate float64, do func(i int, body string) error) (map[string]time.Time, error) {
	var mu sync.Mutex
	sent := map[string]time.Time{}
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, senders)
	for i := range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := i; k < n; k += senders {
				time.Sleep(time.Until(pace(start, k, rate)))
				body := fmt.Sprintf("%s-%d-%d", prefix, i, k)
				mu.Lock()
				sent[body] = time.Now()
				mu.Unlock()
				if err := do(i, body); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	return sent, <-errs
}

// measure waits for want deliveries of the prefix and summarises them.
func (b *bench) measure(path, prefix string, sent map[string]time.Time, want int) (result, error) {
	start := time.Now()
	for _, t := range sent {
		if t.Before(start) {
			start = t
		}
	}
	if err := b.rec.waitFor(prefix+"-", want, 5*time.Minute); err != nil {
		return result{}, fmt.Errorf("%s: %w", path, err)
	}
	b.rec.mu.Lock()
	defer b.rec.mu.Unlock()
	var lat []float64
	var last time.Time
	for body, t0 := range sent {
		for _, t := range b.rec.at[body] {
			lat = append(lat, float64(t.Sub(t0))/float64(time.Millisecond))
			if t.After(last) {
				last = t
			}
		}
	}
	slices.Sort(lat)
	q := func(p float64) float64 { return lat[min(len(lat)-1, int(p*float64(len(lat))))] }
	secs := last.Sub(start).Seconds()
	return result{Path: path, Messages: len(sent), Deliveries: len(lat), Seconds: secs, PerSecond: float64(len(sent)) / secs,
		P50ms: q(.5), P95ms: q(.95), P99ms: q(.99), OutOfOrder: b.outOfOrder(prefix)}, nil
}

// outOfOrder counts, per receiver and room, messages that arrived after a
// later one of the same sender.
func (b *bench) outOfOrder(prefix string) int {
	n := 0
	for _, seq := range b.rec.seq {
		last := map[string]int{}
		for _, body := range seq {
			rest, ok := strings.CutPrefix(body, prefix+"-")
			if !ok {
				continue
			}
			sender, k, _ := strings.Cut(rest, "-")
			num, _ := strconv.Atoi(k)
			if prev, seen := last[sender]; seen && num < prev {
				n++
			}
			last[sender] = max(last[sender], num)
		}
	}
	return n
}

func (b *bench) perRoom() int { return b.o.clients / b.o.rooms }

func (b *bench) xmppToMatrix(prefix string, n int, rate float64) (result, error) {
	sent, err := b.send(prefix, n, rate, func(i int, body string) error {
		return b.clients[i].send(&xmpp.Message{ID: body, Type: xmpp.TypeGroupchat, To: xmpp.A(b.mucs[i%b.o.rooms]), Body: body,
			OriginID: &xmpp.OriginID{ID: body}})
	})
	if err != nil {
		return result{}, err
	}
	// Delivered to the Matrix observer, and reflected to the clients in the
	// room: count only the observer's.
	return b.measureAt("XMPP → Matrix, bridged", prefix, sent, n, "@observer:")
}

// measureAt is measure counting only receivers whose name contains who.
func (b *bench) measureAt(path, prefix string, sent map[string]time.Time, want int, who string) (result, error) {
	deadline := time.Now().Add(5 * time.Minute)
	for {
		b.rec.mu.Lock()
		got := 0
		for body := range sent {
			for r := range b.rec.at[body] {
				if strings.Contains(r, who) {
					got++
				}
			}
		}
		b.rec.mu.Unlock()
		if got >= want {
			break
		}
		if time.Now().After(deadline) {
			return result{}, fmt.Errorf("%s: %d of %d arrived", path, got, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
	only := newArrivals()
	b.rec.mu.Lock()
	for body := range sent {
		for r, t := range b.rec.at[body] {
			if strings.Contains(r, who) {
				if only.at[body] == nil {
					only.at[body] = map[string]time.Time{}
				}
				only.at[body][r] = t
			}
		}
	}
	for k, seq := range b.rec.seq {
		if strings.Contains(k, who) {
			only.seq[k] = seq
		}
	}
	b.rec.mu.Unlock()
	saved := b.rec
	b.rec = only
	defer func() { b.rec = saved }()
	return b.measure(path, prefix, sent, want)
}

func (b *bench) matrixToXMPP(prefix string, n int, rate float64) (result, error) {
	sent, err := b.send(prefix, n, rate, func(i int, body string) error {
		return b.senders[i].send(b.rooms[i%b.o.rooms], body)
	})
	if err != nil {
		return result{}, err
	}
	return b.measureAt("Matrix → XMPP, bridged", prefix, sent, n*b.perRoom(), "@"+b.s.XMPPDomain)
}

// rawMatrix sends as Matrix clients with the order the bridge keeps: one
// client per room, sending that room's messages one after the other (a
// homeserver orders concurrent sends to one room as they happen to land).
func (b *bench) rawMatrix(prefix string, n int, rate float64) (result, error) {
	sent, err := b.sendBy(b.o.rooms, prefix, n, rate, func(i int, body string) error {
		return b.senders[i].send(b.rooms[i%b.o.rooms], body)
	})
	if err != nil {
		return result{}, err
	}
	return b.measureAt("XMPP → Matrix, raw: Matrix clients → homeserver", prefix, sent, n, "@observer:")
}

// rawToXMPP measures the two legs Matrix → XMPP crosses, each alone: the
// homeserver pushing to a do-nothing appservice (on the bridge's port, with
// its registration), and a component (with the bridge's secret) sending the
// same messages through Prosody to the clients of each room.
func (b *bench) rawToXMPP(prefix string, n int, rate float64) (result, result, error) {
	before := b.s.cpuSample()
	sent, err := b.send(prefix+"as", n, rate, func(i int, body string) error {
		return b.senders[i].send(b.rooms[i%b.o.rooms], body)
	})
	if err != nil {
		return result{}, result{}, err
	}
	as, err := b.measureAt("Matrix → XMPP, raw: homeserver → appservice", prefix+"as", sent, n, "appservice")
	if err != nil {
		return result{}, result{}, err
	}
	if rate <= 0 {
		b.noteCPU(&as, before)
	}

	comp, err := xmpp.NewComponent(xmpp.Config{Server: fmt.Sprintf("127.0.0.1:%d", b.s.CompPort), Domain: b.s.CompDomain,
		Secret: b.s.Secret}, nullHandler{}, zerolog.Nop())
	if err != nil {
		return result{}, result{}, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go comp.Run(ctx)
	wctx, wcancel := waitCtx(30 * time.Second)
	defer wcancel()
	if err = comp.WaitConnected(wctx); err != nil {
		return result{}, result{}, fmt.Errorf("raw component: %w", err)
	}
	sent, err = b.send(prefix+"c", n, rate, func(i int, body string) error {
		room := i % b.o.rooms
		from, _ := b.mucs[room].WithResource(fmt.Sprintf("Sender %d", i))
		for k, c := range b.clients {
			if k%b.o.rooms == room {
				m := &xmpp.Message{ID: body, Type: xmpp.TypeGroupchat, From: xmpp.A(from), To: xmpp.A(c.jid), Body: body}
				if err := comp.Send(ctx, m); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		return result{}, result{}, err
	}
	direct, err := b.measureAt("Matrix → XMPP, raw: component → Prosody → clients", prefix+"c", sent, n*b.perRoom(), "@"+b.s.XMPPDomain)
	return as, direct, err
}

type nullHandler struct{}

func (nullHandler) HandleMessage(context.Context, *xmpp.Message)   {}
func (nullHandler) HandlePresence(context.Context, *xmpp.Presence) {}
func (nullHandler) HandleIQ(context.Context, *xmpp.IQ)             {}
func (nullHandler) HandleConnected(context.Context)                {}

// nullAppservice answers the homeserver's transactions at once, noting the
// message bodies, on the bridge's appservice port.
func (b *bench) nullAppservice() (*http.Server, error) {
	mux := http.NewServeMux()
	mux.HandleFunc("PUT /_matrix/app/v1/transactions/{txn}", func(w http.ResponseWriter, r *http.Request) {
		now := time.Now()
		var txn appservice.Transaction
		data, _ := io.ReadAll(r.Body)
		if json.Unmarshal(data, &txn) == nil {
			for _, evt := range txn.Events {
				var c struct {
					Body string `json:"body"`
				}
				if json.Unmarshal(evt.Content.VeryRaw, &c) == nil && c.Body != "" {
					b.rec.add("appservice", evt.RoomID.String(), c.Body, now)
				}
			}
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte("{}"))
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte("{}"))
	})
	srv := &http.Server{Addr: fmt.Sprintf("127.0.0.1:%d", b.s.ASPort), Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.ListenAndServe() }()
	select {
	case err := <-errc:
		return nil, err
	case <-time.After(100 * time.Millisecond):
		return srv, nil
	}
}

// cpuLines prints, below a throughput table, how busy the machine was in
// each run that was sampled and what the homeserver spent per message.
func cpuLines(w io.Writer, rs []result) {
	fmt.Fprintln(w)
	for _, r := range rs {
		if r.MachineBusy > 0 {
			fmt.Fprintf(w, "- %s: machine %.0f %% busy, homeserver %.1f ms CPU per message\n", r.Path, 100*r.MachineBusy, r.HomeserverCPUms)
		}
	}
}

func (b *bench) print(w io.Writer) {
	line := func(r result) {
		fmt.Fprintf(w, "| %-52s | %5d | %6d | %7.1f | %8.1f | %8.1f | %8.1f | %5d |\n",
			r.Path, r.Messages, r.Deliveries, r.PerSecond, r.P50ms, r.P95ms, r.P99ms, r.OutOfOrder)
	}
	head := "| %-52s | %5s | %6s | %7s | %8s | %8s | %8s | %5s |\n"
	sep := "|" + strings.Repeat("-", 54) + "|------:|-------:|--------:|---------:|---------:|---------:|------:|\n"
	opts := b.rep.Options
	fmt.Fprintf(w, "Databases: the bridge's %s, Dendrite's %s\n\n", opts.Database, opts.HomeserverDatabase)
	fmt.Fprintf(w, "Throughput: %d messages per path at once, %d clients, %d rooms; the bridge's sync fallback %s\n\n", b.o.messages, b.o.clients, b.o.rooms, b.o.syncFallback)
	fmt.Fprintf(w, head, "path", "msgs", "deliv.", "msg/s", "p50 ms", "p95 ms", "p99 ms", "order")
	fmt.Fprint(w, sep)
	for _, r := range b.rep.Throughput {
		line(r)
	}
	cpuLines(w, b.rep.Throughput)
	fmt.Fprintf(w, "\nLatency at moderate load: %d messages per path at %.0f/s\n\n", b.o.paced, b.o.rate)
	fmt.Fprintf(w, head, "path", "msgs", "deliv.", "msg/s", "p50 ms", "p95 ms", "p99 ms", "order")
	fmt.Fprint(w, sep)
	for _, r := range b.rep.Latency {
		line(r)
	}
	br := b.rep.Bridge
	printRatios := func(ra ratios) {
		fmt.Fprintf(w, "| XMPP → Matrix throughput, bridged / raw | %.2f | ≥ 0.9 |\n", ra.ToMatrixThroughput)
		fmt.Fprintf(w, "| Matrix → XMPP throughput, bridged / raw (slower leg) | %.2f | ≥ 0.9 |\n", ra.ToXMPPThroughput)
		fmt.Fprintf(w, "| XMPP → Matrix p50 overhead at moderate load | %.1f ms | ≤ 5 ms |\n", ra.ToMatrixOverheadMs)
		fmt.Fprintf(w, "| Matrix → XMPP p50 overhead at moderate load | %.1f ms | ≤ 5 ms |\n", ra.ToXMPPOverheadMs)
	}
	fmt.Fprintf(w, "\n| figure | value | target |\n|---|---:|---:|\n")
	printRatios(b.rep.Ratios)
	fmt.Fprintf(w, "| bridge CPU per 1,000 messages | %.3f s | ≤ 0.3 s |\n", br.CPUSecondsPer1000)
	fmt.Fprintf(w, "| bridge RSS idle | %.1f MB | ≤ 50 MB |\n", br.IdleRSSMB)
	fmt.Fprintf(w, "| bridge peak RSS under load | %.1f MB | |\n", br.PeakRSSMB)
	fmt.Fprintf(w, "| start to ready, empty | %.2f s | |\n", br.ReadySeconds)
	if fo := b.rep.Failover; fo != nil {
		fmt.Fprintf(w, "| failover: kill -9 of the active process to the standby's /ready | %.2f s | a few seconds |\n", fo.ReadySeconds)
		fmt.Fprintf(w, "| failover: kill -9 to the first message bridged by the standby (XMPP → Matrix, one sent every 50 ms) | %.2f s | |\n", fo.FirstMessageSeconds)
	}
	a := b.rep.AtSize
	fmt.Fprintf(w, "\nAt size (%s): %d hosted rooms, %d puppets, %d occupant sessions stored\n\n", b.db.Type, b.o.portals, b.o.puppets, b.o.sessions)
	fmt.Fprintf(w, head, "path", "msgs", "deliv.", "msg/s", "p50 ms", "p95 ms", "p99 ms", "order")
	fmt.Fprint(w, sep)
	for _, r := range append(a.Throughput, a.Latency...) {
		line(r)
	}
	cpuLines(w, a.Throughput)
	fmt.Fprintf(w, "\n| figure at size | value | target |\n|---|---:|---:|\n")
	fmt.Fprintf(w, "| start to ready | %.2f s | ≤ 2 s |\n", a.ReadySeconds)
	fmt.Fprintf(w, "| restore after connecting (every room loaded; %d session pings answered by then) | %.1f s | |\n", a.SessionsPinged, a.RestoreSeconds)
	fmt.Fprintf(w, "| bridge RSS after the restore | %.1f MB | ≤ 150 MB |\n", a.RSSMB)
	fmt.Fprintf(w, "| bridge live heap after the restore | %.1f MB | |\n", a.HeapLiveMB)
	fmt.Fprintf(w, "| bridge peak RSS | %.1f MB | |\n", a.PeakRSSMB)
	fmt.Fprintf(w, "| bridge CPU per 1,000 messages | %.3f s | as empty (%.3f s) |\n", a.CPUSecondsPer1000, br.CPUSecondsPer1000)
	if len(a.Latency) == 5 && len(b.rep.Latency) == 5 {
		fmt.Fprintf(w, "| XMPP → Matrix p50 at moderate load | %.1f ms | as empty (%.1f ms) |\n", a.Latency[0].P50ms, b.rep.Latency[0].P50ms)
		fmt.Fprintf(w, "| Matrix → XMPP p50 at moderate load | %.1f ms | as empty (%.1f ms) |\n", a.Latency[2].P50ms, b.rep.Latency[2].P50ms)
	}
	printRatios(a.Ratios)
	if m := a.MemLimit; m != nil {
		fmt.Fprintf(w, "\nAt size again, the bridge restarted with GOMEMLIMIT=%s\n\n| figure | value | without |\n|---|---:|---:|\n", m.Limit)
		fmt.Fprintf(w, "| restore after connecting | %.1f s | %.1f s |\n", m.RestoreSeconds, a.RestoreSeconds)
		fmt.Fprintf(w, "| bridge RSS after the restore | %.1f MB | %.1f MB |\n", m.RSSMB, a.RSSMB)
		fmt.Fprintf(w, "| bridge peak RSS (the process's, from its start) | %.1f MB | %.1f MB |\n", m.PeakRSSMB, a.PeakRSSMB)
		fmt.Fprintf(w, "| bridge CPU per 1,000 messages | %.3f s | %.3f s |\n", m.CPUSecondsPer1000, a.CPUSecondsPer1000)
		if len(a.Throughput) == 5 {
			fmt.Fprintf(w, "| XMPP → Matrix throughput | %.1f msg/s | %.1f msg/s |\n", m.ToMatrixPerSecond, a.Throughput[0].PerSecond)
			fmt.Fprintf(w, "| Matrix → XMPP throughput | %.1f msg/s | %.1f msg/s |\n", m.ToXMPPPerSecond, a.Throughput[2].PerSecond)
		}
	}
}
