package matrix

import (
	"context"
	"database/sql"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"go.mau.fi/util/dbutil"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/crypto"
	"maunium.net/go/mautrix/id"
	_ "modernc.org/sqlite"
)

// TestDeleteExpiredKeys: room keys older than twice the rotation period
// are dropped from the SQLite crypto store; recent ones stay.
func TestDeleteExpiredKeys(t *testing.T) {
	ctx := context.Background()
	// The bridge's database writes times in SQLite's format, as here.
	raw, err := sql.Open("sqlite", "file:"+filepath.Join(t.TempDir(), "c.db")+"?_time_format=sqlite")
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	db, err := dbutil.NewWithDB(raw, "sqlite")
	if err != nil {
		t.Fatal(err)
	}
	store := crypto.NewSQLCryptoStore(db, dbutil.NoopLogger, "@bot:hs.test", "DEV", []byte("pickle"))
	if err = store.DB.Upgrade(ctx); err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("{}")) }))
	defer hs.Close()
	client, err := mautrix.NewClient(hs.URL, "@bot:hs.test", "token")
	if err != nil {
		t.Fatal(err)
	}
	client.DeviceID = "DEV"
	log := zerolog.Nop()
	mach := crypto.NewOlmMachine(client, &log, store, encryptedRoomStore{})
	if err = mach.Load(ctx); err != nil {
		t.Fatal(err)
	}
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
	c := &Connector{crypto: &Crypto{store: store}}
	n, err := c.DeleteExpiredKeys(ctx)
	if err != nil || n != 1 {
		t.Fatalf("DeleteExpiredKeys = %d, %v; want the one expired key", n, err)
	}
	var left int
	if err = raw.QueryRow(`SELECT COUNT(*) FROM crypto_megolm_inbound_session WHERE session IS NOT NULL AND room_id='!new:hs.test'`).Scan(&left); err != nil || left != 1 {
		t.Errorf("recent keys left: %d, %v; want 1", left, err)
	}
	if n, _ = (&Connector{}).DeleteExpiredKeys(ctx); n != 0 {
		t.Error("DeleteExpiredKeys without encryption did something")
	}
}
