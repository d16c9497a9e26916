package matrix

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/iotest"
	"time"

	"github.com/rs/zerolog"
	"maunium.net/go/mautrix/appservice"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
)

func testConfig() Config {
	as := DefaultAppserviceConfig()
	as.Address = "http://127.0.0.1:29333"
	as.ASToken, as.HSToken = "as-secret", "hs-secret"
	return Config{Homeserver: HomeserverConfig{Address: "http://127.0.0.1:8008", Domain: "hs.test"}, Appservice: as}
}

// testConnector returns a connector whose homeserver is hs, served until
// the test ends, with h (a recording handler if nil) and store (may be nil).
func testConnector(t *testing.T, hs http.Handler, h Handler, store appservice.StateStore) *Connector {
	t.Helper()
	srv := httptest.NewServer(hs)
	t.Cleanup(srv.Close)
	cfg := testConfig()
	cfg.Homeserver.Address = srv.URL
	if h == nil {
		h = &recordingHandler{}
	}
	c, err := NewConnector(cfg, store, h, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestPuppetID(t *testing.T) {
	c := testConfig()
	for _, tc := range []struct {
		remote string
		want   id.UserID
	}{
		{"alice@xmpp.test", "@_xmpp_alice=40xmpp.test:hs.test"},
		{"Alice.Smith@Jabber.example", "@_xmpp__alice._smith=40_jabber.example:hs.test"},
		{"x_y@z", "@_xmpp_x__y=40z:hs.test"},
	} {
		got := c.PuppetID(tc.remote)
		if got != tc.want {
			t.Errorf("PuppetID(%q) = %s; want %s", tc.remote, got, tc.want)
		}
		if back, ok := c.ParsePuppetID(got); !ok || back != tc.remote {
			t.Errorf("ParsePuppetID(%s) = %q, %v", got, back, ok)
		}
		if !c.IsBridgeUser(got) {
			t.Errorf("IsBridgeUser(%s) = false", got)
		}
	}
	for _, u := range []id.UserID{"@alice:hs.test", "@_xmpp_alice=40xmpp.test:other.test", "@_xmpp_:hs.test", "@xmppbot:hs.test",
		"@_xmpp_=zz:hs.test", "@_xmpp_=41:hs.test"} {
		if r, ok := c.ParsePuppetID(u); ok {
			t.Errorf("ParsePuppetID(%s) = %q; want no puppet", u, r)
		}
	}
	if !c.IsBridgeUser("@xmppbot:hs.test") || c.IsBridgeUser("@alice:hs.test") {
		t.Error("IsBridgeUser does not tell the bot from a real user")
	}
}

func FuzzPuppetIDRoundTrip(f *testing.F) {
	c := testConfig()
	for _, s := range []string{"alice@xmpp.test", "UPPER@x", "_=@/", "ü@ß"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, remote string) {
		if remote == "" || strings.Contains(remote, "/") {
			return // a puppet always stands for someone; a bare JID has no '/'
		}
		u := c.PuppetID(remote)
		back, ok := c.ParsePuppetID(u)
		if !ok || back != remote {
			t.Fatalf("ParsePuppetID(PuppetID(%q) = %s) = %q, %v", remote, u, back, ok)
		}
	})
}

func TestRoomPuppetID(t *testing.T) {
	c := testConfig()
	token := "o-abcdefghij234567"
	u := c.RoomPuppetID("team@conference.xmpp.example", token)
	if want := id.UserID("@_xmpp_team=40conference.xmpp.example=2f" + token + ":hs.test"); u != want {
		t.Errorf("RoomPuppetID = %s; want %s", u, want)
	}
	if ref, tok, ok := c.ParseRoomPuppetID(u); !ok || ref != "team@conference.xmpp.example" || tok != token {
		t.Errorf("ParseRoomPuppetID(%s) = %q, %q, %v", u, ref, tok, ok)
	}
	// Neither kind of puppet passes for the other.
	if r, ok := c.ParsePuppetID(u); ok {
		t.Errorf("ParsePuppetID(%s) = %q; a room's occupant is not a JID's puppet", u, r)
	}
	if ref, tok, ok := c.ParseRoomPuppetID(c.PuppetID("alice@xmpp.test")); ok {
		t.Errorf("ParseRoomPuppetID of a JID's puppet = %q, %q", ref, tok)
	}
	if !c.IsBridgeUser(u) {
		t.Errorf("IsBridgeUser(%s) = false", u)
	}
	// A room whose JID does not fit is named by a hash; one that looks like
	// a hash is hashed too, so the two never meet.
	long := strings.Repeat("ä", 200) + "@conference.xmpp.example"
	for _, room := range []string{long, "~abc@conference.xmpp.example"} {
		u = c.RoomPuppetID(room, token)
		ref, _, ok := c.ParseRoomPuppetID(u)
		if len(u) > 255 || !ok || !strings.HasPrefix(ref, "~") || ref != c.RoomRef(room, token) {
			t.Errorf("RoomPuppetID(%q) = %s (%d bytes), ref %q; want a hashed room within 255 bytes", room, u, len(u), ref)
		}
	}
	if c.RoomRef(long, token) == c.RoomRef(long+"x", token) {
		t.Error("two long rooms share a hash")
	}
	for _, bad := range []id.UserID{"@_xmpp_team=40conf=2f:hs.test", "@_xmpp_=2fo-x:hs.test", "@_xmpp_team=40conf=2f_o:hs.test"} {
		if ref, tok, ok := c.ParseRoomPuppetID(bad); ok {
			t.Errorf("ParseRoomPuppetID(%s) = %q, %q; want no puppet", bad, ref, tok)
		}
	}
}

func FuzzRoomPuppetIDRoundTrip(f *testing.F) {
	c := testConfig()
	f.Add("team@conference.xmpp.test", "o-abc")
	f.Add(strings.Repeat("x", 300), "n-0")
	f.Add("~x@y", "o-1")
	f.Add("/", "0") // not a bare JID, still round-trips
	f.Fuzz(func(t *testing.T, room, token string) {
		if room == "" || token == "" || len(token) > 32 || strings.ContainsFunc(token, func(r rune) bool {
			return !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-')
		}) {
			return
		}
		u := c.RoomPuppetID(room, token)
		if len(u) > 255 {
			t.Fatalf("RoomPuppetID(%q, %q) = %d bytes", room, token, len(u))
		}
		ref, tok, ok := c.ParseRoomPuppetID(u)
		if !ok || ref != c.RoomRef(room, token) || tok != token {
			t.Fatalf("ParseRoomPuppetID(%s) = %q, %q, %v; want %q, %q", u, ref, tok, ok, c.RoomRef(room, token), token)
		}
		if _, ok := c.ParsePuppetID(u); ok {
			t.Fatalf("ParsePuppetID accepts the room puppet %s", u)
		}
	})
}

func TestValidate(t *testing.T) {
	if err := testConfig().Validate(); err != nil {
		t.Fatalf("valid config refused: %v", err)
	}
	for _, tc := range []struct {
		key    string
		mutate func(*Config)
	}{
		{"homeserver.address", func(c *Config) { c.Homeserver.Address = "localhost:8008" }},
		{"homeserver.domain", func(c *Config) { c.Homeserver.Domain = "" }},
		{"homeserver.domain", func(c *Config) { c.Homeserver.Domain = "bad domain" }},
		{"appservice.address", func(c *Config) { c.Appservice.Address = "ftp://x" }},
		{"appservice.port", func(c *Config) { c.Appservice.Port = 0 }},
		{"appservice.id", func(c *Config) { c.Appservice.ID = "" }},
		{"appservice.bot.username", func(c *Config) { c.Appservice.Bot.Username = "Bot!" }},
		{"appservice.bot.avatar", func(c *Config) { c.Appservice.Bot.Avatar = "http://x/y.png" }},
		{"appservice.puppet_prefix", func(c *Config) { c.Appservice.PuppetPrefix = "" }},
	} {
		c := testConfig()
		tc.mutate(&c)
		err := c.Validate()
		if err == nil || !strings.HasPrefix(err.Error(), tc.key+":") {
			t.Errorf("Validate with a bad %s = %v; want an error naming the key", tc.key, err)
		}
	}
}

func TestRegistration(t *testing.T) {
	reg := testConfig().Registration()
	if reg.AppToken != "as-secret" || reg.ServerToken != "hs-secret" || reg.SenderLocalpart != "xmppbot" || reg.URL != "http://127.0.0.1:29333" {
		t.Errorf("registration = %+v", reg)
	}
	users := reg.Namespaces.UserIDs
	if len(users) != 2 || !users[0].Exclusive {
		t.Fatalf("user namespaces = %+v", users)
	}
	re := regexp.MustCompile(users[0].Regex)
	for u, want := range map[string]bool{
		"@_xmpp_alice=40xmpp.test:hs.test":      true,
		"@_xmpp_alice=40xmpp.test:hs.test.evil": false,
		"@x_xmpp_a:hs.test":                     false,
		"@alice:hs.test":                        false,
	} {
		if got := re.MatchString(u); got != want {
			t.Errorf("namespace %q matches %s = %v; want %v", re, u, got, want)
		}
	}
	aliases := reg.Namespaces.RoomAliases
	if len(aliases) != 1 || !aliases[0].Exclusive {
		t.Fatalf("alias namespaces = %+v", aliases)
	}
	re = regexp.MustCompile(aliases[0].Regex)
	for a, want := range map[string]bool{
		"#_xmpp_team=40conference.xmpp.test:hs.test":      true,
		"#_xmpp_team=40conference.xmpp.test:hs.test.evil": false,
		"#lobby:hs.test": false,
	} {
		if got := re.MatchString(a); got != want {
			t.Errorf("namespace %q matches %s = %v; want %v", re, a, got, want)
		}
	}
}

func TestRemoteRoomAlias(t *testing.T) {
	c := testConfig()
	for room, want := range map[string]id.RoomAlias{
		"team@conference.xmpp.example":  "#_xmpp_team=40conference.xmpp.example:hs.test",
		`a\20b@conference.xmpp.example`: "#_xmpp_a=5c20b=40conference.xmpp.example:hs.test",
		"büro_1@muc.example":            "#_xmpp_b=c3=bcro__1=40muc.example:hs.test",
	} {
		got := c.RemoteRoomAlias(room)
		if got != want {
			t.Errorf("RemoteRoomAlias(%q) = %s; want %s", room, got, want)
		}
		if back, ok := c.ParseRemoteRoomAlias(got); !ok || back != room {
			t.Errorf("ParseRemoteRoomAlias(%s) = %q, %v", got, back, ok)
		}
	}
	// Typed with capitals, it is the same alias.
	if room, ok := c.ParseRemoteRoomAlias("#_XMPP_Team=40Conference.xmpp.example:hs.test"); !ok || room != "team@conference.xmpp.example" {
		t.Errorf("a capitalised alias = %q, %v", room, ok)
	}
	for _, bad := range []id.RoomAlias{"#lobby:hs.test", "#_xmpp_team=40conf:other.test", "#_xmpp_:hs.test", "#_xmpp_=zz:hs.test",
		"#_xmpp_a=40b=2fc:hs.test", "_xmpp_a=40b:hs.test"} {
		if room, ok := c.ParseRemoteRoomAlias(bad); ok {
			t.Errorf("ParseRemoteRoomAlias(%s) = %q; want none", bad, room)
		}
	}
}

func FuzzRemoteRoomAliasRoundTrip(f *testing.F) {
	c := testConfig()
	for _, s := range []string{"team@conference.xmpp.test", `a\20b@c`, "ü@ß"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, room string) {
		if room == "" || strings.Contains(room, "/") {
			return // a bare JID is never empty and has no '/'
		}
		a := c.RemoteRoomAlias(room)
		back, ok := c.ParseRemoteRoomAlias(a)
		if !ok || back != room {
			t.Fatalf("ParseRemoteRoomAlias(RemoteRoomAlias(%q) = %s) = %q, %v", room, a, back, ok)
		}
	})
}

type recordingHandler struct {
	mu     sync.Mutex
	events []*event.Event
	// fail, while set, makes every transaction's handling fail.
	fail error
}

func (h *recordingHandler) HandleMatrixEvent(ctx context.Context, evt *event.Event) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.events = append(h.events, evt)
	if txn := TxnFrom(ctx); txn != nil {
		fail := h.fail
		txn.Await("key", func(context.Context) error { return fail })
	}
}

func TestPutTransaction(t *testing.T) {
	h := &recordingHandler{}
	c, err := NewConnector(testConfig(), nil, h, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(c.Mux)
	defer srv.Close()
	put := func(txn, token, body string) int {
		req, _ := http.NewRequest(http.MethodPut, srv.URL+"/_matrix/app/v1/transactions/"+txn, strings.NewReader(body))
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	events := func(n int) string {
		var evts []string
		for i := range n {
			evts = append(evts, fmt.Sprintf(`{"type":"m.room.message","event_id":"$e%d","room_id":"!r:hs.test","sender":"@u:hs.test","content":{"msgtype":"m.text","body":"%d"}}`, i, i))
		}
		return `{"events":[` + strings.Join(evts, ",") + `]}`
	}
	// Until the bridge can handle every event kind, nothing is taken.
	if got := put("t-early", "hs-secret", events(1)); got != http.StatusServiceUnavailable || len(h.events) != 0 {
		t.Fatalf("a transaction before AcceptTransactions: status %d, %d events handled; want 503 and none", got, len(h.events))
	}
	c.AcceptTransactions()
	for _, tc := range []struct {
		name, txn, token, body string
		status, handled        int
	}{
		{"no token", "t0", "", events(1), 401, 0},
		{"wrong token", "t0", "as-secret", events(1), 401, 0},
		{"bad JSON", "t1", "hs-secret", `{"events":[`, 400, 0},
		{"in order", "t2", "hs-secret", events(5), 200, 5},
		{"repeated transaction", "t2", "hs-secret", events(5), 200, 5},
		{"event without ID skipped", "t3", "hs-secret", `{"events":[{"type":"m.room.message","room_id":"!r:hs.test","content":{}}]}`, 200, 5},
		{"too large", "t4", "hs-secret", `{"events":[],"x":"` + strings.Repeat("a", MaxTransactionSize) + `"}`, 413, 5},
		// Handling fails: not acknowledged, so the retry is handled again.
		{"handling failed", "t5", "hs-secret", events(1), 503, 6},
		{"retry after failure", "t5", "hs-secret", events(1), 200, 7},
		// Presence (MSC2409) has a sender and no room; without a sender
		// it says nothing.
		{"presence", "t6", "hs-secret", `{"de.sorunome.msc2409.ephemeral":[{"type":"m.presence","sender":"@u:hs.test","content":{"presence":"unavailable","status_msg":"away"}},{"type":"m.presence","content":{"presence":"online"}}]}`, 200, 8},
	} {
		h.mu.Lock()
		h.fail = nil
		if tc.name == "handling failed" {
			h.fail = errors.New("link down")
		}
		h.mu.Unlock()
		if got := put(tc.txn, tc.token, tc.body); got != tc.status {
			t.Errorf("%s: status %d; want %d", tc.name, got, tc.status)
		}
		h.mu.Lock()
		n := len(h.events)
		h.mu.Unlock()
		if n != tc.handled {
			t.Errorf("%s: %d events handled in all; want %d", tc.name, n, tc.handled)
		}
	}
	for i, evt := range h.events[:5] {
		if evt.ID != id.EventID(fmt.Sprintf("$e%d", i)) || evt.Content.AsMessage().Body != fmt.Sprint(i) {
			t.Errorf("event %d = %s %q; want in order", i, evt.ID, evt.Content.AsMessage().Body)
		}
	}
	if pres := h.events[7]; pres.Type != event.EphemeralEventPresence || pres.Sender != "@u:hs.test" ||
		pres.Content.AsPresence().Presence != event.PresenceUnavailable || pres.Content.AsPresence().StatusMessage != "away" {
		t.Errorf("the presence event arrived as %+v", pres)
	}
}

// FuzzTransaction: whatever a homeserver (or anyone with the token) sends
// as a transaction gets 200 or a 4xx answer, never a panic, and only
// events with a room, or presence with a sender, reach the handler.
func FuzzTransaction(f *testing.F) {
	for _, seed := range []string{
		`{"events":[{"type":"m.room.message","event_id":"$e","room_id":"!r:hs","sender":"@u:hs","content":{"msgtype":"m.text","body":"x"}}]}`,
		`{"events":[{"type":"m.room.member","state_key":"@u:hs","event_id":"$m","room_id":"!r:hs","sender":"@u:hs","content":{"membership":"join","displayname":7}}]}`,
		`{"ephemeral":[{"type":"m.typing","room_id":"!r:hs","content":{"user_ids":["@u:hs"]}}],"de.sorunome.msc2409.ephemeral":[null]}`,
		`{"ephemeral":[{"type":"m.presence","sender":"@u:hs","content":{"presence":"online","last_active_ago":"x"}}]}`,
		`{"events":[null,{},{"type":"m.room.redaction","event_id":"$r","room_id":"!r:hs","redacts":"$e","content":{}}]}`,
		`{"events":{"not":"a list"}}`,
		`[`,
	} {
		f.Add(seed)
	}
	h := &recordingHandler{}
	c, err := NewConnector(testConfig(), nil, h, zerolog.Nop())
	if err != nil {
		f.Fatal(err)
	}
	c.AcceptTransactions()
	n := 0
	f.Fuzz(func(t *testing.T, body string) {
		n++
		req := httptest.NewRequest(http.MethodPut, fmt.Sprintf("/_matrix/app/v1/transactions/f%d", n), strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer hs-secret")
		w := httptest.NewRecorder()
		c.Mux.ServeHTTP(w, req)
		if w.Code != http.StatusOK && (w.Code < 400 || w.Code >= 500) {
			t.Fatalf("status %d for %q", w.Code, body)
		}
		h.mu.Lock()
		defer h.mu.Unlock()
		for _, evt := range h.events {
			if evt.RoomID == "" && (evt.Type != event.EphemeralEventPresence || evt.Sender == "") {
				t.Fatalf("an event without a room reached the handler from %q", body)
			}
		}
		h.events = h.events[:0]
	})
}

// TestTransactionLog: each transaction is traceable from the bridge's log
// alone: its ID and event IDs at debug level, and a body that could not be
// read as a warning.
func TestTransactionLog(t *testing.T) {
	var logged strings.Builder
	var mu sync.Mutex
	log := zerolog.New(zerolog.SyncWriter(writerFunc(func(b []byte) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		return logged.Write(b)
	}))).Level(zerolog.DebugLevel)
	c, err := NewConnector(testConfig(), nil, &recordingHandler{}, log)
	if err != nil {
		t.Fatal(err)
	}
	c.AcceptTransactions()
	serve := func(txn string, body io.Reader) int {
		req := httptest.NewRequest(http.MethodPut, "/_matrix/app/v1/transactions/"+txn, body)
		req.Header.Set("Authorization", "Bearer hs-secret")
		w := httptest.NewRecorder()
		c.Mux.ServeHTTP(w, req)
		return w.Code
	}
	body := `{"events":[{"type":"m.room.message","event_id":"$one","room_id":"!r:hs.test","sender":"@u:hs.test","content":{"msgtype":"m.text","body":"x"}},` +
		`{"type":"m.room.message","event_id":"$two","room_id":"!r:hs.test","sender":"@u:hs.test","content":{"msgtype":"m.text","body":"y"}}]}`
	if code := serve("txn-a", strings.NewReader(body)); code != http.StatusOK {
		t.Fatalf("status %d", code)
	}
	if code := serve("txn-b", iotest.ErrReader(errors.New("connection reset"))); code != http.StatusBadRequest {
		t.Fatalf("unreadable body: status %d", code)
	}
	mu.Lock()
	out := logged.String()
	mu.Unlock()
	var sawTxn, sawFailure bool
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var entry struct {
			Level, Message, Error string
			TransactionID         string   `json:"transaction_id"`
			EventIDs              []string `json:"event_ids"`
		}
		if err := json.Unmarshal([]byte(line), &entry); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		switch entry.TransactionID {
		case "txn-a":
			if entry.Message == "Appservice transaction" && slices.Equal(entry.EventIDs, []string{"$one", "$two"}) && entry.Level == "debug" {
				sawTxn = true
			}
		case "txn-b":
			if entry.Level == "warn" && strings.Contains(entry.Error, "connection reset") {
				sawFailure = true
			}
		}
	}
	if !sawTxn || !sawFailure {
		t.Errorf("transaction logged: %v, failed read logged: %v; log:\n%s", sawTxn, sawFailure, out)
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(b []byte) (int, error) { return f(b) }

// TestStreamMedia: a file the homeserver sends slowly streams to its end,
// however long that takes beyond the bot's request timeout; the older
// endpoint is used where authenticated media is missing.
func TestStreamMedia(t *testing.T) {
	const chunks = 6
	c := testConnector(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer as-secret" {
			http.Error(w, "no token", http.StatusUnauthorized)
			return
		}
		switch r.URL.Path {
		case "/_matrix/client/v1/media/download/hs.test/slow", "/_matrix/media/v3/download/hs.test/old":
		default:
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		w.WriteHeader(http.StatusOK)
		for range chunks {
			w.Write([]byte("0123456789"))
			w.(http.Flusher).Flush()
			time.Sleep(100 * time.Millisecond)
		}
	}), nil, nil)
	c.Bot().Client.Client.Timeout = 250 * time.Millisecond // shorter than the file takes
	read := func(open func(context.Context, id.ContentURIString) (*http.Response, error), uri id.ContentURIString) (int, error) {
		resp, err := open(context.Background(), uri)
		if err != nil {
			return 0, err
		}
		defer resp.Body.Close()
		data, err := io.ReadAll(resp.Body)
		return len(data), err
	}
	if n, err := read(c.StreamMedia, "mxc://hs.test/slow"); err != nil || n != 10*chunks {
		t.Errorf("streamed %d bytes, %v; want all %d", n, err, 10*chunks)
	}
	if n, err := read(c.StreamMedia, "mxc://hs.test/old"); err != nil || n != 10*chunks {
		t.Errorf("streamed from the older endpoint %d bytes, %v; want all %d", n, err, 10*chunks)
	}
	if _, err := read(c.StreamMedia, "mxc://hs.test/missing"); err == nil {
		t.Error("a missing file streamed")
	}
	// What the bridge used before: the bot's client, whose timeout covers
	// the body, cuts the file off.
	if n, err := read(c.OpenMedia, "mxc://hs.test/slow"); err == nil && n == 10*chunks {
		t.Error("OpenMedia read the slow file to its end: the timeout this test is about did not bite")
	}
}
