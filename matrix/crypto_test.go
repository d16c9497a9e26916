package matrix

import (
	"context"
	"database/sql"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"go.mau.fi/util/dbutil"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/crypto"
	"maunium.net/go/mautrix/id"
	_ "modernc.org/sqlite"
)

// openCryptoStore opens a SQLite crypto store of the bot's device "DEV".
// Like the bridge's database, it writes times in SQLite's format.
func openCryptoStore(t *testing.T) (*sql.DB, *crypto.SQLCryptoStore) {
	t.Helper()
	raw, err := sql.Open("sqlite", "file:"+filepath.Join(t.TempDir(), "c.db")+"?_time_format=sqlite")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = raw.Close() })
	db, err := dbutil.NewWithDB(raw, "sqlite")
	if err != nil {
		t.Fatal(err)
	}
	store := crypto.NewSQLCryptoStore(db, dbutil.NoopLogger, "@bot:hs.test", "DEV", []byte("pickle"))
	if err = store.DB.Upgrade(context.Background()); err != nil {
		t.Fatal(err)
	}
	return raw, store
}

// loadMachine loads the crypto machine of the bot's device "DEV", talking
// to the homeserver at hsURL, with its keys in store.
func loadMachine(t testing.TB, hsURL string, store crypto.Store) *crypto.OlmMachine {
	t.Helper()
	client, err := mautrix.NewClient(hsURL, "@bot:hs.test", "token")
	if err != nil {
		t.Fatal(err)
	}
	client.DeviceID = "DEV"
	log := zerolog.Nop()
	mach := crypto.NewOlmMachine(client, &log, store, encryptedRoomStore{})
	if err = mach.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	return mach
}

// TestDeleteExpiredKeys: room keys older than twice the rotation period
// are dropped from the SQLite crypto store; recent ones stay.
func TestDeleteExpiredKeys(t *testing.T) {
	ctx := context.Background()
	raw, store := openCryptoStore(t)
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("{}")) }))
	defer hs.Close()
	mach := loadMachine(t, hs.URL, store)
	var err error
	// Sharing a session stores the bot's own inbound copy of it.
	for _, room := range []id.RoomID{"!old:hs.test", "!new:hs.test"} {
		if err = mach.ShareGroupSession(ctx, room, nil); err != nil {
			t.Fatal(err)
		}
	}
	if _, err = raw.Exec(`UPDATE crypto_megolm_inbound_session SET received_at=$1 WHERE room_id='!old:hs.test'`,
		time.Now().Add(-15*24*time.Hour)); err != nil {
		t.Fatal(err)
	}
	// A key stored before the DSN asked for SQLite's time format, in Go's
	// format (a zone other than UTC, too): it expires all the same.
	if err = mach.ShareGroupSession(ctx, "!older:hs.test", nil); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-20 * 24 * time.Hour).In(time.FixedZone("CET", 3600)).Format(goTimeFormat)
	if _, err = raw.Exec(`UPDATE crypto_megolm_inbound_session SET received_at=$1 WHERE room_id='!older:hs.test'`, old); err != nil {
		t.Fatal(err)
	}
	c := &Connector{crypto: &Crypto{store: store}}
	n, err := c.DeleteExpiredKeys(ctx)
	if err != nil || n != 2 {
		t.Fatalf("DeleteExpiredKeys = %d, %v; want the two expired keys", n, err)
	}
	var left int
	if err = raw.QueryRow(`SELECT COUNT(*) FROM crypto_megolm_inbound_session WHERE session IS NOT NULL AND room_id='!new:hs.test'`).Scan(&left); err != nil || left != 1 {
		t.Errorf("recent keys left: %d, %v; want 1", left, err)
	}
	if n, _ = (&Connector{}).DeleteExpiredKeys(ctx); n != 0 {
		t.Error("DeleteExpiredKeys without encryption did something")
	}
}

// keyServer is the part of a homeserver that cross-signing talks to: it
// keeps uploaded device and cross-signing keys, account data and
// signatures in memory. With refuseUpload it demands a password for
// cross-signing keys, as Dendrite does.
type keyServer struct {
	refuseUpload bool

	mu           sync.Mutex
	deviceKeys   map[string]json.RawMessage
	crossSigning map[string]json.RawMessage // master_key, self_signing_key, user_signing_key
	accountData  map[string]json.RawMessage
	uploads      int // accepted cross-signing key uploads
	signatures   []json.RawMessage
}

func (s *keyServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	body, _ := io.ReadAll(r.Body)
	path := strings.TrimPrefix(r.URL.Path, "/_matrix/client/v3")
	reply := func(v any) { _ = json.NewEncoder(w).Encode(v) }
	switch {
	case path == "/keys/upload":
		var req struct {
			DeviceKeys json.RawMessage `json:"device_keys"`
		}
		_ = json.Unmarshal(body, &req)
		if req.DeviceKeys != nil {
			s.deviceKeys["DEV"] = req.DeviceKeys
		}
		reply(map[string]any{"one_time_key_counts": map[string]int{"signed_curve25519": 50}})
	case path == "/keys/query":
		resp := map[string]any{"device_keys": map[string]any{"@bot:hs.test": s.deviceKeys}}
		for usage, key := range s.crossSigning {
			resp[strings.TrimSuffix(usage, "_key")+"_keys"] = map[string]any{"@bot:hs.test": key}
		}
		reply(resp)
	case path == "/keys/device_signing/upload":
		if s.refuseUpload {
			w.WriteHeader(http.StatusUnauthorized)
			reply(map[string]any{"session": "s", "flows": []any{map[string]any{"stages": []string{"m.login.password"}}}})
			return
		}
		var req map[string]json.RawMessage
		_ = json.Unmarshal(body, &req)
		for _, k := range []string{"master_key", "self_signing_key", "user_signing_key"} {
			s.crossSigning[k] = req[k]
		}
		s.uploads++
		reply(map[string]any{})
	case path == "/keys/signatures/upload":
		s.signatures = append(s.signatures, body)
		reply(map[string]any{"failures": map[string]any{}})
	case strings.Contains(path, "/account_data/"):
		if r.Method == http.MethodPut {
			s.accountData[path] = body
			reply(map[string]any{})
		} else if data, ok := s.accountData[path]; ok {
			_, _ = w.Write(data)
		} else {
			w.WriteHeader(http.StatusNotFound)
			reply(map[string]string{"errcode": "M_NOT_FOUND", "error": "no such account data"})
		}
	default:
		reply(map[string]any{})
	}
}

// TestSelfSign: where the homeserver takes cross-signing keys without a
// password, the bot makes them, signs its device and keeps the recovery
// key; once signed, a restart changes nothing. Where it demands a password,
// selfSign reports why and the device stays as it was.
func TestSelfSign(t *testing.T) {
	ctx := context.Background()
	hs := &keyServer{refuseUpload: true, deviceKeys: map[string]json.RawMessage{},
		crossSigning: map[string]json.RawMessage{}, accountData: map[string]json.RawMessage{}}
	srv := httptest.NewServer(hs)
	defer srv.Close()
	raw, store := openCryptoStore(t)
	var err error
	start := func() *Crypto {
		mach := loadMachine(t, srv.URL, store)
		if err := mach.ShareKeys(ctx, -1); err != nil {
			t.Fatal(err)
		}
		return &Crypto{c: &Connector{log: zerolog.Nop()}, mach: mach, store: store}
	}

	if err = start().selfSign(ctx); err == nil || !strings.Contains(err.Error(), "publish cross-signing keys") {
		t.Fatalf("selfSign where a password is demanded = %v; want the refused upload", err)
	}
	// The refusal is remembered: the next start makes no new keys (which
	// would leave more secret storage data in the bot's account).
	accountData := len(hs.accountData)
	if accountData == 0 {
		t.Fatal("the refused attempt wrote no account data; the check below would prove nothing")
	}
	if err = start().selfSign(ctx); err == nil || !strings.Contains(err.Error(), "trying again after") || len(hs.accountData) != accountData {
		t.Fatalf("selfSign after a refusal = %v, account data %d -> %d; want no new attempt", err, accountData, len(hs.accountData))
	}
	// A week later it tries again.
	if err = store.PutSecret(ctx, selfSignRefusedSecret, time.Now().Add(-selfSignRetry-time.Hour).UTC().Format(time.RFC3339)); err != nil {
		t.Fatal(err)
	}
	hs.refuseUpload = false
	k := start()
	if err = k.selfSign(ctx); err != nil {
		t.Fatalf("selfSign: %v", err)
	}
	if hs.uploads != 1 || len(hs.signatures) == 0 {
		t.Fatalf("after selfSign: %d key uploads, %d signature uploads; want the keys and the device's signature", hs.uploads, len(hs.signatures))
	}
	if !strings.Contains(string(hs.signatures[0]), `"DEV"`) {
		t.Errorf("first signature upload does not sign the device: %s", hs.signatures[0])
	}
	if key, _ := store.GetSecret(ctx, recoveryKeySecret); key == "" {
		t.Error("the recovery key was not kept")
	}
	if mark, _ := store.GetSecret(ctx, selfSignRefusedSecret); mark != "" {
		t.Error("the note of the refusal outlived a successful upload")
	}
	if _, verified, _ := k.mach.GetOwnVerificationStatus(ctx); !verified {
		t.Error("the device does not count as verified after selfSign")
	}
	signed := len(hs.signatures)
	if err = start().selfSign(ctx); err != nil || hs.uploads != 1 || len(hs.signatures) != signed {
		t.Errorf("selfSign after a restart = %v with %d key uploads, %d new signatures; want nothing new",
			err, hs.uploads, len(hs.signatures)-signed)
	}
	// A device that lost its signature (a new device) is signed with the
	// keys fetched back from secret storage with the recovery key.
	if _, err = raw.Exec(`DELETE FROM crypto_cross_signing_signatures`); err != nil {
		t.Fatal(err)
	}
	if err = start().selfSign(ctx); err != nil || hs.uploads != 1 || len(hs.signatures) == signed {
		t.Errorf("selfSign of an unsigned device with keys on the server = %v, %d key uploads, %d new signatures; want a signature only",
			err, hs.uploads, len(hs.signatures)-signed)
	}
}
