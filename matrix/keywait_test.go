package matrix

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
)

// memPending is a PendingStore in memory.
type memPending struct {
	mu  sync.Mutex
	ids []PendingEvent
}

func (m *memPending) AddPending(_ context.Context, roomID id.RoomID, eventID id.EventID) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.ids = append(m.ids, PendingEvent{roomID, eventID})
	return nil
}

func (m *memPending) DeletePending(_ context.Context, roomID id.RoomID, eventID id.EventID) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.ids = slices.DeleteFunc(m.ids, func(p PendingEvent) bool { return p == PendingEvent{roomID, eventID} })
	return nil
}

func (m *memPending) Pending(context.Context) ([]PendingEvent, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.ids), nil
}

func (m *memPending) list() []id.EventID {
	pending, _ := m.Pending(context.Background())
	out := make([]id.EventID, len(pending))
	for i, p := range pending {
		out[i] = p.EventID
	}
	return out
}

// ids returns the IDs of the events handled so far.
func (h *recordingHandler) ids() []id.EventID {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []id.EventID
	for _, e := range h.events {
		out = append(out, e.ID)
	}
	return out
}

// keyWaitConnector returns a connector whose homeserver is hs, with a
// recording handler and a pending store in memory; its waits end with the
// test.
func keyWaitConnector(t *testing.T, hs http.HandlerFunc) (*Connector, *recordingHandler, *memPending) {
	t.Helper()
	h := &recordingHandler{}
	c := testConnector(t, hs, h, nil)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(func() {
		cancel()
		c.StopDeliveries()
	})
	c.keys.ctx = ctx
	store := &memPending{}
	c.SetPendingStore(store)
	return c, h, store
}

// TestKeyWait: an encrypted event whose room key has not arrived leaves its
// transaction, which is answered at once; the other rooms' events of the
// transaction go on, its own room's later events wait behind it, and all
// of them are handed on in order when the key comes. Their IDs are kept
// until then. Events whose keys never come cost their room one window in
// all, not one each, and their room one notice.
func TestKeyWait(t *testing.T) {
	old := keyWait
	keyWait = 300 * time.Millisecond
	t.Cleanup(func() { keyWait = old })

	var notices atomic.Int32
	c, h, store := keyWaitConnector(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPut && strings.Contains(r.URL.Path, "/send/m.room.message/") {
			notices.Add(1)
		}
		_, _ = w.Write([]byte(`{"event_id":"$notice"}`))
	})
	keyCame := make(chan struct{})
	var waitsMu sync.Mutex
	var waits []time.Duration // what the forged events were allowed to wait
	c.decryptHook = func(ctx context.Context, evt *event.Event, wait time.Duration) (*event.Event, error) {
		switch {
		case evt.Type != event.EventEncrypted:
			return evt, nil
		case wait <= 0 && strings.HasPrefix(evt.ID.String(), "$late"):
			select {
			case <-keyCame:
			default:
				return nil, errNoKeyYet
			}
		case strings.HasPrefix(evt.ID.String(), "$late"):
			select {
			case <-keyCame:
			case <-time.After(wait):
				return nil, fmt.Errorf("%w: no key", ErrUndecryptable)
			}
		case wait <= 0:
			return nil, errNoKeyYet
		default: // forged: the key never comes
			waitsMu.Lock()
			waits = append(waits, wait)
			waitsMu.Unlock()
			time.Sleep(wait)
			return nil, fmt.Errorf("%w: no key", ErrUndecryptable)
		}
		out := *evt
		out.Type = event.EventMessage
		out.Content = event.Content{Parsed: &event.MessageEventContent{MsgType: event.MsgText, Body: "decrypted"}}
		return &out, nil
	}
	c.AcceptTransactions()
	srv := httptest.NewServer(c.Mux)
	defer srv.Close()
	put := func(txn string, evts ...string) int {
		req, _ := http.NewRequest(http.MethodPut, srv.URL+"/_matrix/app/v1/transactions/"+txn, strings.NewReader(`{"events":[`+strings.Join(evts, ",")+`]}`))
		req.Header.Set("Authorization", "Bearer hs-secret")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	encrypted := func(eventID, room string) string {
		return fmt.Sprintf(`{"type":"m.room.encrypted","event_id":%q,"room_id":%q,"sender":"@u:hs.test","content":{"algorithm":"m.megolm.v1.aes-sha2","ciphertext":"x","session_id":"s","sender_key":"k","device_id":"D"}}`, eventID, room)
	}
	plain := func(eventID, room string) string {
		return fmt.Sprintf(`{"type":"m.room.message","event_id":%q,"room_id":%q,"sender":"@u:hs.test","content":{"msgtype":"m.text","body":"plain"}}`, eventID, room)
	}
	handled := h.ids
	waitUntil := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}

	if got := put("t1", encrypted("$late1", "!a:hs.test"), plain("$a2", "!a:hs.test"), plain("$b1", "!b:hs.test")); got != http.StatusOK {
		t.Fatalf("transaction answered %d; want 200 while the key is awaited beside it", got)
	}
	if got := handled(); !slices.Equal(got, []id.EventID{"$b1"}) {
		t.Errorf("handled %v; want only the other room's event while room a waits", got)
	}
	if got := store.list(); !slices.Equal(got, []id.EventID{"$late1", "$a2"}) {
		t.Errorf("kept %v; want the waiting event and the one behind it", got)
	}
	// Room a's next transaction queues behind the wait too.
	if got := put("t2", plain("$a3", "!a:hs.test")); got != http.StatusOK {
		t.Fatalf("second transaction answered %d", got)
	}
	close(keyCame)
	waitUntil("room a's events", func() bool { return len(handled()) == 4 })
	if got, want := handled(), []id.EventID{"$b1", "$late1", "$a2", "$a3"}; !slices.Equal(got, want) {
		t.Errorf("handled %v; want %v", got, want)
	}
	waitUntil("the kept IDs to go", func() bool { return len(store.list()) == 0 })

	// Three forged events in a row: one window for all, one notice.
	before := len(handled())
	if got := put("t3", encrypted("$f1", "!c:hs.test"), encrypted("$f2", "!c:hs.test"), encrypted("$f3", "!c:hs.test"),
		plain("$c4", "!c:hs.test")); got != http.StatusOK {
		t.Fatalf("forged transaction answered %d", got)
	}
	waitUntil("room c's plain event", func() bool { return len(handled()) == before+1 })
	waitsMu.Lock()
	var total time.Duration
	for _, w := range waits {
		total += w
	}
	waitsMu.Unlock()
	if total > keyWait {
		t.Errorf("the forged events were let wait %v in all (%v); want one window of %v at most", total, waits, keyWait)
	}
	waitUntil("a notice", func() bool { return notices.Load() > 0 })
	// A marker event's notice path after the forged ones: a later forged
	// event in the same minute gets no notice of its own.
	put("t4", encrypted("$f5", "!c:hs.test"), plain("$c6", "!c:hs.test"))
	waitUntil("room c's marker", func() bool { return slices.Contains(handled(), "$c6") })
	if n := notices.Load(); n != 1 {
		t.Errorf("%d notices for four undecryptable events in one room within a minute; want 1", n)
	}
}

// TestResumeKeyWaits: the events that waited for their room key when the
// bridge stopped are fetched again at start and handed on in order; one
// the homeserver no longer has is dropped from the store.
func TestResumeKeyWaits(t *testing.T) {
	c, h, store := keyWaitConnector(t, func(w http.ResponseWriter, r *http.Request) {
		switch {
		case strings.HasSuffix(r.URL.Path, "/event/$gone"):
			w.WriteHeader(http.StatusNotFound)
			_, _ = w.Write([]byte(`{"errcode":"M_NOT_FOUND","error":"no such event"}`))
		case strings.Contains(r.URL.Path, "/event/"):
			eventID := r.URL.Path[strings.LastIndex(r.URL.Path, "/")+1:]
			_, _ = fmt.Fprintf(w, `{"type":"m.room.message","event_id":%q,"room_id":"!a:hs.test","sender":"@u:hs.test","content":{"msgtype":"m.text","body":"x"}}`, eventID)
		default:
			w.WriteHeader(http.StatusNotFound)
		}
	})
	store.ids = []PendingEvent{{"!a:hs.test", "$p1"}, {"!a:hs.test", "$gone"}, {"!a:hs.test", "$p2"}}
	if err := c.ResumeKeyWaits(context.Background()); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for len(store.list()) > 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if got, want := h.ids(), []id.EventID{"$p1", "$p2"}; !slices.Equal(got, want) {
		t.Errorf("handed on %v; want %v", got, want)
	}
	if left := store.list(); len(left) != 0 {
		t.Errorf("kept %v after the resume", left)
	}
}
