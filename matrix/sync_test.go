package matrix

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"
)

// syncServer answers /sync: a long poll waits until the client gives up,
// a poll (no timeout) answers at once. It records each request.
type syncServer struct {
	mu       sync.Mutex
	requests []syncRequest
	arrived  chan syncRequest
	// pollTakes is how long a poll takes to answer.
	pollTakes time.Duration
	// filters are the filters the client made, in order; the nth has ID n.
	filters []json.RawMessage
}

type syncRequest struct {
	long   bool
	filter string        // the filter ID it named
	at     time.Time     // when it arrived
	ended  chan struct{} // closed when the client gave up on a long poll, or the poll was answered
}

func (s *syncServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case strings.HasSuffix(r.URL.Path, "/filter"):
		var body json.RawMessage
		_ = json.NewDecoder(r.Body).Decode(&body)
		s.mu.Lock()
		s.filters = append(s.filters, body)
		n := len(s.filters)
		s.mu.Unlock()
		_ = json.NewEncoder(w).Encode(map[string]string{"filter_id": strconv.Itoa(n)})
	case strings.HasSuffix(r.URL.Path, "/sync"):
		timeout := r.URL.Query().Get("timeout")
		req := syncRequest{long: timeout != "" && timeout != "0", filter: r.URL.Query().Get("filter"), at: time.Now(), ended: make(chan struct{})}
		s.mu.Lock()
		s.requests = append(s.requests, req)
		s.mu.Unlock()
		s.arrived <- req
		if req.long {
			<-r.Context().Done()
			close(req.ended)
			return
		}
		time.Sleep(s.pollTakes)
		_ = json.NewEncoder(w).Encode(map[string]any{"next_batch": "s1"})
	default:
		_ = json.NewEncoder(w).Encode(map[string]any{})
	}
}

type memSyncStore struct{}

func (memSyncStore) LoadNextBatch(context.Context) (string, error) { return "s0", nil }
func (memSyncStore) SaveNextBatch(context.Context, string) error   { return nil }

// TestSyncPollsWhileBusy: the bot's sync long-polls while the homeserver is
// quiet; a transaction cuts the long poll short and the loop polls at the
// pace instead; once transactions stop, it long-polls again.
func TestSyncPollsWhileBusy(t *testing.T) {
	pace, busyFor := SyncPace, syncBusyFor
	SyncPace, syncBusyFor = 50*time.Millisecond, 400*time.Millisecond
	t.Cleanup(func() { SyncPace, syncBusyFor = pace, busyFor })

	hs := &syncServer{arrived: make(chan syncRequest, 100)}
	c := testConnector(t, hs, nil, nil)
	c.AcceptTransactions()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { c.RunSync(ctx, memSyncStore{}, func() bool { return true }); close(done) }()
	defer func() { cancel(); <-done }()

	next := func(what string) syncRequest {
		t.Helper()
		select {
		case req := <-hs.arrived:
			return req
		case <-time.After(10 * time.Second):
			t.Fatalf("no sync request: %s", what)
			return syncRequest{}
		}
	}
	if first := next("the first"); !first.long {
		t.Fatal("an idle bridge does not long-poll")
	} else {
		// A transaction with an event arrives.
		req := httptest.NewRequest(http.MethodPut, "/_matrix/app/v1/transactions/t1", strings.NewReader(
			`{"events":[{"type":"m.room.message","event_id":"$e","room_id":"!r:hs.test","sender":"@u:hs.test","content":{"msgtype":"m.text","body":"x"}}]}`))
		req.Header.Set("Authorization", "Bearer hs-secret")
		rec := httptest.NewRecorder()
		c.Mux.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			t.Fatalf("transaction answered %d", rec.Code)
		}
		select {
		case <-first.ended:
		case <-time.After(10 * time.Second):
			t.Fatal("a transaction did not cut the long poll short")
		}
	}
	polls := []syncRequest{next("a poll"), next("a second poll")}
	for _, p := range polls {
		if p.long {
			t.Fatal("a busy bridge long-polls")
		}
	}
	// No more transactions: the long poll comes back.
	for {
		if next("after the traffic").long {
			break
		}
	}
}

// TestSyncPollPausesAfterCostlyPolls: while busy, a poll that took long is
// followed by a pause of a few times as long, so that the bot's syncs
// cannot take most of the homeserver's time (at size, each is costly).
func TestSyncPollPausesAfterCostlyPolls(t *testing.T) {
	pace, busyFor := SyncPace, syncBusyFor
	SyncPace, syncBusyFor = 10*time.Millisecond, time.Minute
	t.Cleanup(func() { SyncPace, syncBusyFor = pace, busyFor })

	const takes = 100 * time.Millisecond
	hs := &syncServer{arrived: make(chan syncRequest, 100), pollTakes: takes}
	c := testConnector(t, hs, nil, nil)
	c.AcceptTransactions()
	c.pushed() // a transaction came: busy
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { c.RunSync(ctx, memSyncStore{}, func() bool { return true }); close(done) }()
	defer func() { cancel(); <-done }()

	var polls []syncRequest
	for len(polls) < 3 {
		select {
		case req := <-hs.arrived:
			if req.long {
				t.Fatal("a busy bridge long-polls")
			}
			polls = append(polls, req)
		case <-time.After(10 * time.Second):
			t.Fatalf("%d polls in 10 s", len(polls))
		}
	}
	// From one poll's start to the next: its own time and the pause.
	for i := 1; i < len(polls); i++ {
		if gap := polls[i].at.Sub(polls[i-1].at); gap < (1+syncPauseFactor)*takes {
			t.Errorf("poll %d came %s after the one before, which took %s; want a pause of %d times that after it", i, gap, takes, syncPauseFactor)
		}
	}
}

// TestSyncDropsRoomsWhenPushed: once the bridge reports that the
// homeserver pushes what the sync fallback is for, the bot syncs with a
// filter that leaves every room out, and hands nothing more.
func TestSyncDropsRoomsWhenPushed(t *testing.T) {
	pace := SyncPace
	SyncPace = 10 * time.Millisecond
	t.Cleanup(func() { SyncPace = pace })

	hs := &syncServer{arrived: make(chan syncRequest, 100)}
	c := testConnector(t, hs, nil, nil)
	c.AcceptTransactions()
	var wanted atomic.Bool
	wanted.Store(true)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	c.pushed() // busy: polls, which the server answers at once
	go func() { c.RunSync(ctx, memSyncStore{}, wanted.Load); close(done) }()
	defer func() { cancel(); <-done }()

	next := func() syncRequest {
		t.Helper()
		select {
		case req := <-hs.arrived:
			return req
		case <-time.After(10 * time.Second):
			t.Fatal("no sync request")
			return syncRequest{}
		}
	}
	if first := next(); first.filter != "1" {
		t.Fatalf("the first sync named filter %q; want 1", first.filter)
	}
	wanted.Store(false)
	var req syncRequest
	for req = next(); req.filter == "1"; req = next() {
	}
	if req.filter != "2" {
		t.Fatalf("after rooms were no longer wanted, a sync named filter %q; want a new one, 2", req.filter)
	}
	hs.mu.Lock()
	defer hs.mu.Unlock()
	var made struct {
		Room struct {
			Rooms *[]string `json:"rooms"`
		} `json:"room"`
	}
	if err := json.Unmarshal(hs.filters[1], &made); err != nil || made.Room.Rooms == nil || len(*made.Room.Rooms) != 0 {
		t.Errorf("the second filter does not leave every room out: %s", hs.filters[1])
	}
}

// TestSyncRedelivers: timeline events from the sync fallback whose
// handling failed (the XMPP link was down) are handed again until they are
// delivered, beside the sync loop; typing is handed once.
func TestSyncRedelivers(t *testing.T) {
	c, h, _ := keyWaitConnector(t, func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNotFound) })
	h.mu.Lock()
	h.fail = errors.New("the XMPP link is down")
	h.mu.Unlock()
	var resp mautrix.RespSync
	if err := json.Unmarshal([]byte(`{"next_batch":"s1","rooms":{"join":{"!a:hs.test":{
		"timeline":{"events":[{"type":"m.room.redaction","event_id":"$del","sender":"@mary:hs.test","redacts":"$m","origin_server_ts":1,"content":{"redacts":"$m"}}]},
		"ephemeral":{"events":[{"type":"m.typing","content":{"user_ids":["@mary:hs.test"]}}]}}}}}`), &resp); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c.dispatchSync(ctx, &resp)
	count := func(want id.EventID) (n int) {
		for _, got := range h.ids() {
			if got == want {
				n++
			}
		}
		return n
	}
	if count("$del") != 1 || count("") != 1 {
		t.Fatalf("handled %v at once; want the deletion and the typing", h.ids())
	}
	deadline := time.Now().Add(10 * time.Second)
	for count("$del") < 2 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if count("$del") < 2 {
		t.Fatalf("handled %v; want the undelivered deletion handed again", h.ids())
	}
	h.mu.Lock()
	h.fail = nil
	h.mu.Unlock()
	done := make(chan struct{})
	go func() { c.redelivering.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the deletion was still handed again after it was delivered")
	}
	if n := count(""); n != 1 {
		t.Errorf("typing handed %d times; want once", n)
	}
}
