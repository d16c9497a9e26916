package bridge

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"go.mau.fi/util/dbutil"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/mxpp/mxpp/database"
	"github.com/mxpp/mxpp/database/dbtest"
	"github.com/mxpp/mxpp/matrix"
)

// TestMigrateDB copies a SQLite database with rows in the bridge's tables,
// the state store and the crypto store into an empty PostgreSQL database:
// every row arrives, booleans, bytes and JSON as their PostgreSQL types; a
// second copy into the same database is refused.
func TestMigrateDB(t *testing.T) {
	admin := dbtest.Postgres(t)
	if admin == "" {
		t.Skip("needs a PostgreSQL server: set " + dbtest.EnvPostgres)
	}
	ctx := context.Background()
	dir := t.TempDir()
	src := database.Config{Type: database.TypeSQLite, URI: "file:" + filepath.Join(dir, "mxpp.db")}
	db, err := openAllStores(ctx, src, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UnixMilli()
	account := []byte{0, 1, 2, 0xff, 'x', 0}
	for _, q := range []struct {
		sql  string
		args []any
	}{
		{`INSERT INTO portal (room_id, alias, muc_local, created_at) VALUES ($1, $2, $3, $4)`, []any{"!r:hs.test", "#r:hs.test", "#r#hs.test", now}},
		{`INSERT INTO puppet (jid, mxid, registered, created_at) VALUES ($1, $2, $3, $4)`, []any{"alice@xmpp.test", "@_xmpp_alice:hs.test", true, now}},
		{`INSERT INTO occupant (room_id, full_jid, user_jid, nick, joined_at) VALUES ($1, $2, $3, $4, $5)`, []any{"!r:hs.test", "alice@xmpp.test/pc", "alice@xmpp.test", "Alice", now}},
		{`INSERT INTO message (room_id, event_id, sender_jid, stanza_id, timestamp) VALUES ($1, $2, $3, $4, $5)`, []any{"!r:hs.test", "$e1", "alice@xmpp.test", "s1", now}},
		{`INSERT INTO room_settings (room_id, exposed, exposed_by) VALUES ($1, $2, $3)`, []any{"!r:hs.test", true, "@mary:hs.test"}},
		// SQLite takes any value in any column: an integer for a boolean,
		// bytes for text. Each must arrive as its column's type.
		{`INSERT INTO room_settings (room_id, exposed, exposed_by) VALUES ($1, $2, $3)`, []any{"!s:hs.test", int64(1), []byte("@sam:hs.test")}},
		{`INSERT INTO crypto_account (account_id, device_id, shared, sync_token, account) VALUES ($1, $2, $3, $4, $5)`, []any{"@bot:hs.test", "DEV", true, "tok", account}},
	} {
		if _, err = db.Exec(ctx, q.sql, q.args...); err != nil {
			t.Fatalf("%s: %v", q.sql, err)
		}
	}
	if err = db.SetValue(ctx, "occupant_id_key", "secret"); err != nil {
		t.Fatal(err)
	}
	states := matrix.NewStateStore(db.Database, dbutil.ZeroLogger(zerolog.Nop()))
	levels := &event.PowerLevelsEventContent{Users: map[id.UserID]int{"@mary:hs.test": 100}, EventsDefault: 0}
	if err = states.SetPowerLevels(ctx, "!r:hs.test", levels); err != nil {
		t.Fatal(err)
	}
	if err = states.SetMembership(ctx, "!r:hs.test", "@mary:hs.test", event.MembershipJoin); err != nil {
		t.Fatal(err)
	}
	counts := map[string]int{}
	for _, table := range []string{"portal", "puppet", "occupant", "message", "room_settings", "kv", "crypto_account", "mx_room_state", "mx_user_profile"} {
		var n int
		if err = db.QueryRow(ctx, `SELECT COUNT(*) FROM `+table).Scan(&n); err != nil || n == 0 {
			t.Fatalf("the source's %s: %d rows, %v", table, n, err)
		}
		counts[table] = n
	}
	_ = db.Close()

	cfgPath := filepath.Join(dir, "config.yaml")
	if err = os.WriteFile(cfgPath, []byte("database:\n  type: sqlite\n  uri: "+src.URI+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	uri, drop, err := dbtest.NewPostgres(admin)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(drop)
	// Not while a bridge holds the database.
	running, err := database.Open(ctx, src, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	held, err := running.AcquireInstance(ctx, "", 0, zerolog.Nop(), func() {})
	if err != nil {
		t.Fatal(err)
	}
	if err = MigrateDB(ctx, cfgPath, uri, io.Discard); !errors.Is(err, database.ErrInstanceActive) {
		t.Fatalf("migrate-db beside a running bridge: %v; want it refused", err)
	}
	held.Release()
	_ = running.Close()
	var out bytes.Buffer
	if err = MigrateDB(ctx, cfgPath, uri, &out); err != nil {
		t.Fatalf("migrate-db: %v", err)
	}
	if !strings.Contains(out.String(), "database.type: postgres") {
		t.Errorf("migrate-db said %q; want what to change in the config", out.String())
	}

	pg, err := openAllStores(ctx, database.Config{Type: database.TypePostgres, URI: uri}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer pg.Close()
	for table, want := range counts {
		var n int
		if err = pg.QueryRow(ctx, `SELECT COUNT(*) FROM `+table).Scan(&n); err != nil || n != want {
			t.Errorf("%s in PostgreSQL: %d rows, %v; want %d", table, n, err, want)
		}
	}
	var registered, exposed, shared bool
	var gotAccount []byte
	if err = pg.QueryRow(ctx, `SELECT registered FROM puppet`).Scan(&registered); err != nil || !registered {
		t.Errorf("puppet.registered = %v, %v; want true", registered, err)
	}
	for _, room := range []string{"!r:hs.test", "!s:hs.test"} {
		var by string
		if err = pg.QueryRow(ctx, `SELECT exposed, exposed_by FROM room_settings WHERE room_id = $1`, room).Scan(&exposed, &by); err != nil ||
			!exposed || !strings.HasPrefix(by, "@") {
			t.Errorf("room_settings of %s = %v %q, %v; want exposed by a Matrix user", room, exposed, by, err)
		}
	}
	if err = pg.QueryRow(ctx, `SELECT shared, account FROM crypto_account`).Scan(&shared, &gotAccount); err != nil || !shared || !bytes.Equal(gotAccount, account) {
		t.Errorf("crypto_account = %v %x, %v; want true %x", shared, gotAccount, err, account)
	}
	if v, err := pg.GetValue(ctx, "occupant_id_key"); err != nil || v != "secret" {
		t.Errorf("kv occupant_id_key = %q, %v", v, err)
	}
	got, err := matrix.NewStateStore(pg.Database, dbutil.ZeroLogger(zerolog.Nop())).GetPowerLevels(ctx, "!r:hs.test")
	if err != nil || got == nil || got.Users["@mary:hs.test"] != 100 {
		t.Errorf("power levels in PostgreSQL: %+v, %v", got, err)
	}

	if err = MigrateDB(ctx, cfgPath, uri, &out); !errors.Is(err, database.ErrTargetNotEmpty) {
		t.Errorf("a second copy into the same database: %v; want ErrTargetNotEmpty", err)
	}
}
