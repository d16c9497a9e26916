package matrix

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
)

// fakeHomeserver stores sent events; it can drop the connection instead
// of answering a send, as a homeserver that dies after persisting does,
// and it forgets transaction IDs (as across a restart).
type fakeHomeserver struct {
	mu       sync.Mutex
	events   []map[string]any
	dropNext int // sends to persist and then not answer
	fail5xx  int // sends to refuse with 502 before persisting
}

func (h *fakeHomeserver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.mu.Lock()
	defer h.mu.Unlock()
	switch {
	case r.Method == http.MethodPut && strings.Contains(r.URL.Path, "/send/"):
		if h.fail5xx > 0 {
			h.fail5xx--
			w.WriteHeader(http.StatusBadGateway)
			return
		}
		var content map[string]any
		body, _ := io.ReadAll(r.Body)
		_ = json.Unmarshal(body, &content)
		evtID := "$e" + string(rune('a'+len(h.events)))
		h.events = append(h.events, map[string]any{"event_id": evtID, "type": "m.room.message", "room_id": "!r:hs.test",
			"sender": r.URL.Query().Get("user_id"), "content": content})
		if h.dropNext > 0 {
			h.dropNext--
			conn, _, _ := w.(http.Hijacker).Hijack()
			conn.Close()
			return
		}
		_ = json.NewEncoder(w).Encode(map[string]string{"event_id": evtID})
	case r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/messages"):
		chunk := make([]map[string]any, 0, len(h.events))
		for i := len(h.events) - 1; i >= 0; i-- {
			chunk = append(chunk, h.events[i])
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"chunk": chunk, "start": "s"})
	default:
		_ = json.NewEncoder(w).Encode(map[string]any{})
	}
}

func TestSendMessageSurvivesLostAnswers(t *testing.T) {
	defer func(d time.Duration) { sendBackoff = d }(sendBackoff)
	sendBackoff = 10 * time.Millisecond
	hs := &fakeHomeserver{}
	store, _ := testStateStore(t)
	ctx := context.Background()
	c := testConnector(t, hs, nil, store)
	puppet := c.PuppetID("alice@xmpp.test")
	room := id.RoomID("!r:hs.test")
	_ = store.SetMembership(ctx, room, puppet, event.MembershipJoin)
	_ = store.MarkRegistered(ctx, puppet)

	send := func(txn string) id.EventID {
		t.Helper()
		evtID, err := c.SendMessage(ctx, room, puppet, txn, event.EventMessage,
			&event.MessageEventContent{MsgType: event.MsgText, Body: "hello"}, time.Time{})
		if err != nil {
			t.Fatalf("send %s: %v", txn, err)
		}
		return evtID
	}
	// Persisted, answer lost: found again, not sent twice.
	hs.dropNext = 1
	if got := send("t1"); got != "$ea" || len(hs.events) != 1 {
		t.Errorf("after a lost answer: event %s, %d events stored; want $ea and 1", got, len(hs.events))
	}
	if hs.events[0]["content"].(map[string]any)[TxnKey] != "t1" || hs.events[0]["content"].(map[string]any)["body"] != "hello" {
		t.Errorf("stored content %v lacks the body or the transaction marker", hs.events[0]["content"])
	}
	// Refused with a server error before persisting: sent again.
	hs.fail5xx = 2
	if got := send("t2"); got != "$eb" || len(hs.events) != 2 {
		t.Errorf("after server errors: event %s, %d events stored; want $eb and 2", got, len(hs.events))
	}
}
