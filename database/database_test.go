package database

import (
	"context"
	"database/sql"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mxpp/mxpp/database/dbtest"
	"github.com/rs/zerolog"
	"go.mau.fi/util/dbutil"
	"maunium.net/go/mautrix/id"
)

// openTestDB opens a fresh database: SQLite, or PostgreSQL when
// dbtest.EnvPostgres names a server (the test command runs this package
// on both).
func openTestDB(t *testing.T) *Database {
	t.Helper()
	typ, uri := dbtest.Fresh(t)
	cfg := DefaultConfig()
	cfg.Type, cfg.URI = typ, uri
	db, err := Open(context.Background(), cfg, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

// sqliteOnly skips a test of what only SQLite has, when the tests run on
// PostgreSQL.
func sqliteOnly(t *testing.T) {
	t.Helper()
	if dbtest.Postgres(t) != "" {
		t.Skip("SQLite only")
	}
}

func TestSQLiteDSN(t *testing.T) {
	for _, tc := range []struct {
		uri, want string
		ok        bool
	}{
		{"file:mxpp.db", "file:mxpp.db?_pragma=foreign_keys%281%29", true},
		{"/data/mxpp.db", "file:/data/mxpp.db?", true},
		{"file:/x.db?cache=shared", "cache=shared", true},
		{"", "", false},
		{"file:", "", false},
		{"postgres://user@host/db", "", false},
		{"file:x.db?%zz", "", false},
	} {
		got, err := sqliteDSN(tc.uri)
		if (err == nil) != tc.ok {
			t.Errorf("sqliteDSN(%q) error = %v; want ok=%v", tc.uri, err, tc.ok)
			continue
		}
		if tc.ok && !strings.Contains(got, tc.want) {
			t.Errorf("sqliteDSN(%q) = %q; want it to contain %q", tc.uri, got, tc.want)
		}
	}
}

func TestReopenKeepsRows(t *testing.T) {
	ctx := context.Background()
	cfg := DefaultConfig()
	cfg.Type, cfg.URI = dbtest.Fresh(t)
	db, err := Open(ctx, cfg, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	p := &Portal{RoomID: "!a:hs.test", Alias: "#Lobby:hs.test", MUCLocal: "#lobby#hs.test", CreatedAt: time.UnixMilli(1000)}
	if err = db.Portal.Insert(ctx, p); err != nil {
		t.Fatal(err)
	}
	_ = db.Close()
	db, err = Open(ctx, cfg, zerolog.Nop())
	if err != nil {
		t.Fatal("reopening an upgraded database:", err)
	}
	defer db.Close()
	got, err := db.Portal.GetByMUCLocal(ctx, "#lobby#hs.test")
	if err != nil || got == nil || *got != *p {
		t.Fatalf("GetByMUCLocal after reopen = %+v, %v; want %+v", got, err, p)
	}
}

func TestPortalPuppetOccupant(t *testing.T) {
	ctx := context.Background()
	db := openTestDB(t)
	room := id.RoomID("!room:hs.test")
	if p, err := db.Portal.GetByRoomID(ctx, room); p != nil || err != nil {
		t.Fatalf("GetByRoomID of a missing portal = %v, %v; want nil, nil", p, err)
	}
	if err := db.Portal.Insert(ctx, &Portal{RoomID: room, Alias: "#x:hs.test", MUCLocal: "#x#hs.test", CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if err := db.Portal.Insert(ctx, &Portal{RoomID: "!other:hs.test", Alias: "#X:hs.test", MUCLocal: "#x#hs.test", CreatedAt: time.Now()}); err == nil {
		t.Fatal("two portals with the same MUC localpart were accepted")
	}
	// An occupant needs its puppet (foreign key).
	occ := &Occupant{RoomID: room, FullJID: "alice@xmpp.test/phone", UserJID: "alice@xmpp.test", Nick: "Alice", JoinedAt: time.Now()}
	if err := db.Occupant.Upsert(ctx, occ); err == nil {
		t.Fatal("an occupant without a puppet was accepted; are foreign keys on?")
	}
	pup := &Puppet{JID: "alice@xmpp.test", MXID: "@_xmpp_alice=40xmpp.test:hs.test", CreatedAt: time.Now()}
	if err := db.Puppet.Upsert(ctx, pup); err != nil {
		t.Fatal(err)
	}
	pup.Registered = true
	if err := db.Puppet.Upsert(ctx, pup); err != nil {
		t.Fatal(err)
	}
	if got, err := db.Puppet.GetByMXID(ctx, pup.MXID); err != nil || got == nil || !got.Registered {
		t.Fatalf("GetByMXID = %+v, %v; want a registered puppet", got, err)
	}
	if err := db.Occupant.Upsert(ctx, occ); err != nil {
		t.Fatal(err)
	}
	occ2 := *occ
	occ2.FullJID = "alice@xmpp.test/laptop"
	if err := db.Occupant.Upsert(ctx, &occ2); err != nil {
		t.Fatal(err)
	}
	occs, err := db.Occupant.GetByRoom(ctx, room)
	if err != nil || len(occs) != 2 {
		t.Fatalf("GetByRoom = %d occupants, %v; want 2", len(occs), err)
	}
	if rooms, err := db.Occupant.Rooms(ctx); err != nil || len(rooms) != 1 || rooms[0] != room {
		t.Fatalf("Rooms = %v, %v; want the one room, once", rooms, err)
	}
	if err = db.Occupant.Delete(ctx, room, occ.FullJID); err != nil {
		t.Fatal(err)
	}
	if n, _ := db.Occupant.Count(ctx); n != 1 {
		t.Fatalf("after Delete, %d occupants; want 1", n)
	}
	// Deleting the portal cascades to its occupants and messages.
	if err = db.Message.Insert(ctx, &Message{RoomID: room, EventID: "$e", SenderJID: "alice@xmpp.test", StanzaID: "s1", Timestamp: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if err = db.Portal.Delete(ctx, room); err != nil {
		t.Fatal(err)
	}
	if n, _ := db.Occupant.Count(ctx); n != 0 {
		t.Fatalf("after deleting the portal, %d occupants remain", n)
	}
	if m, _ := db.Message.GetByEventID(ctx, room, "$e"); m != nil {
		t.Fatal("after deleting the portal, its message map remains")
	}
}

// TestDirectChats: a direct chat is a portal row of its own kind: found by
// its two users, never by MUC lookups or among the rooms, one per pair.
func TestDirectChats(t *testing.T) {
	ctx := context.Background()
	db := openTestDB(t)
	if err := db.Portal.Insert(ctx, &Portal{RoomID: "!room:hs.test", Alias: "#x:hs.test", MUCLocal: "#x#hs.test", CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	dm := NewDirect("!dm:hs.test", "@mary:hs.test", "alice@xmpp.test")
	if err := db.Portal.Insert(ctx, dm); err != nil {
		t.Fatal(err)
	}
	if err := db.Portal.Insert(ctx, NewDirect("!dm2:hs.test", "@mary:hs.test", "alice@xmpp.test")); err == nil {
		t.Error("a second direct chat of the same two users was accepted")
	}
	if err := db.Portal.Insert(ctx, NewDirect("!dm3:hs.test", "@bob:hs.test", "alice@xmpp.test")); err != nil {
		t.Fatal(err)
	}
	got, err := db.Portal.GetDirect(ctx, "@mary:hs.test", "alice@xmpp.test")
	if err != nil || got == nil || got.RoomID != dm.RoomID || !got.IsDirect() || got.DMUser != "@mary:hs.test" {
		t.Fatalf("GetDirect = %+v, %v", got, err)
	}
	if got, _ := db.Portal.GetDirect(ctx, "@mary:hs.test", "bob@xmpp.test"); got != nil {
		t.Errorf("GetDirect of another pair = %+v", got)
	}
	if rows, _ := db.Portal.GetDirectByJID(ctx, "alice@xmpp.test"); len(rows) != 2 {
		t.Errorf("GetDirectByJID = %d chats; want 2", len(rows))
	}
	if n, err := db.Portal.CountDirect(ctx); err != nil || n != 2 {
		t.Errorf("CountDirect = %d, %v; want 2", n, err)
	}
	if rows, _ := db.Portal.GetDirectByUser(ctx, "@mary:hs.test"); len(rows) != 1 || rows[0].RoomID != dm.RoomID {
		t.Errorf("GetDirectByUser = %+v; want mary's chat", rows)
	}
	if rows, _ := db.Portal.GetAll(ctx); len(rows) != 1 || rows[0].IsDirect() {
		t.Errorf("GetAll lists %+v; want the room only", rows)
	}
	if got, _ := db.Portal.GetByMUCLocal(ctx, dm.MUCLocal); got != nil {
		t.Errorf("GetByMUCLocal found a direct chat: %+v", got)
	}
	if got, _ := db.Portal.GetByRoomID(ctx, dm.RoomID); got == nil || !got.IsDirect() {
		t.Errorf("GetByRoomID of a direct chat = %+v", got)
	}
}

func TestMessageMap(t *testing.T) {
	ctx := context.Background()
	db := openTestDB(t)
	room := id.RoomID("!room:hs.test")
	if err := db.Portal.Insert(ctx, &Portal{RoomID: room, Alias: "#x:hs.test", MUCLocal: "#x#hs.test", CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	old := &Message{RoomID: room, EventID: "$old", SenderJID: "alice@xmpp.test", StanzaID: "a1", Timestamp: time.UnixMilli(1000)}
	recent := &Message{RoomID: room, EventID: "$new", SenderJID: "bob#hs.test@matrix.xmpp.test", StanzaID: "$new", Timestamp: time.UnixMilli(5000)}
	for _, m := range []*Message{old, recent, old} { // the repeat must be a no-op
		if err := db.Message.Insert(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	got, err := db.Message.GetByStanzaID(ctx, room, "alice@xmpp.test", "a1")
	if err != nil || got == nil || got.EventID != "$old" {
		t.Fatalf("GetByStanzaID = %+v, %v", got, err)
	}
	if got, _ = db.Message.GetByStanzaID(ctx, room, "mallory@xmpp.test", "a1"); got != nil {
		t.Fatal("GetByStanzaID matched another sender's stanza id")
	}
	if err = db.Message.DeleteBefore(ctx, time.UnixMilli(2000)); err != nil {
		t.Fatal(err)
	}
	if got, _ = db.Message.GetByEventID(ctx, room, "$old"); got != nil {
		t.Fatal("DeleteBefore kept an old mapping")
	}
	if got, _ = db.Message.GetByEventID(ctx, room, "$new"); got == nil {
		t.Fatal("DeleteBefore removed a recent mapping")
	}
}

func TestSecret(t *testing.T) {
	ctx := context.Background()
	db := openTestDB(t)
	a, err := db.Secret(ctx, KeyOccupantID)
	if err != nil || len(a) != 32 {
		t.Fatalf("Secret = %x, %v", a, err)
	}
	b, err := db.Secret(ctx, KeyOccupantID)
	if err != nil || string(a) != string(b) {
		t.Fatal("Secret changed between calls")
	}
	if c, _ := db.Secret(ctx, "other"); string(c) == string(a) {
		t.Fatal("two keys share a secret")
	}
}

// TestUpgradeFromV1 freezes the first released schema and upgrades it.
func TestUpgradeFromV1(t *testing.T) {
	// PostgreSQL support began at v10: no PostgreSQL database has an
	// older version to upgrade from.
	sqliteOnly(t)
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "v1.db")
	raw, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	_, err = raw.Exec(v1Schema + `
		CREATE TABLE version (version INTEGER, compat INTEGER);
		INSERT INTO version VALUES (1, 1);
		INSERT INTO portal VALUES ('!r:hs.test', '#r:hs.test', '#r#hs.test', 1);`)
	raw.Close()
	if err != nil {
		t.Fatal(err)
	}
	db, err := Open(ctx, Config{URI: "file:" + path}, zerolog.Nop())
	if err != nil {
		t.Fatalf("upgrading a v1 database: %v", err)
	}
	defer db.Close()
	if p, err := db.Portal.GetByRoomID(ctx, "!r:hs.test"); err != nil || p == nil {
		t.Fatalf("portal after the upgrade: %v, %v", p, err)
	}
	if _, err = db.Secret(ctx, KeyOccupantID); err != nil {
		t.Fatalf("kv table after the upgrade: %v", err)
	}
	if err = db.Puppet.Upsert(ctx, &Puppet{JID: "a@x", MXID: "@_xmpp_a=40x:hs.test", CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if err = db.Puppet.SetAvatarHash(ctx, "a@x", "abc"); err != nil {
		t.Fatalf("puppet avatar hash after the upgrade: %v", err)
	}
	if p, _ := db.Puppet.GetByJID(ctx, "a@x"); p == nil || p.AvatarHash != "abc" {
		t.Fatalf("puppet after the upgrade = %+v", p)
	}
	// The upgraded database has the tables and columns of a fresh one.
	if got, want := columns(t, db), columns(t, openTestDB(t)); got != want {
		t.Errorf("upgraded schema:\n%s\nfresh schema:\n%s", got, want)
	}
}

// columns lists a database's tables and their columns, one table a line,
// as SQLite or PostgreSQL describes them.
func columns(t *testing.T, db *Database) string {
	t.Helper()
	query := `SELECT m.name, p.name FROM sqlite_master m JOIN pragma_table_info(m.name) p
		WHERE m.type='table' AND m.name NOT LIKE 'sqlite_%' AND m.name<>'version' ORDER BY m.name, p.name`
	if db.Dialect == dbutil.Postgres {
		query = `SELECT table_name, column_name FROM information_schema.columns
			WHERE table_schema = current_schema() AND table_name <> 'version' ORDER BY table_name, column_name`
	}
	rows, err := db.RawDB.Query(query)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var b strings.Builder
	last := ""
	for rows.Next() {
		var table, col string
		if err := rows.Scan(&table, &col); err != nil {
			t.Fatal(err)
		}
		if table != last {
			b.WriteString("\n" + table + ":")
			last = table
		}
		b.WriteString(" " + col)
	}
	return b.String()
}

// TestPendingSend: a send begun and not finished is reported to the next
// attempt; a finished one is not; old ones expire with the message map.
func TestPendingSend(t *testing.T) {
	ctx := context.Background()
	db := openTestDB(t)
	room := id.RoomID("!room:hs.test")
	if err := db.Portal.Insert(ctx, &Portal{RoomID: room, Alias: "#x:hs.test", MUCLocal: "#x#hs.test", CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if unfinished, err := db.Message.BeginSend(ctx, room, "t1"); err != nil || unfinished {
		t.Fatalf("first BeginSend = %v, %v; want false", unfinished, err)
	}
	if unfinished, err := db.Message.BeginSend(ctx, room, "t1"); err != nil || !unfinished {
		t.Fatalf("BeginSend after an unfinished one = %v, %v; want true", unfinished, err)
	}
	if unfinished, _ := db.Message.BeginSend(ctx, "!other:hs.test", "t1"); unfinished {
		t.Fatal("a pending send of another room counted")
	}
	if err := db.Message.FinishSend(ctx, room, "t1"); err != nil {
		t.Fatal(err)
	}
	if unfinished, _ := db.Message.BeginSend(ctx, room, "t1"); unfinished {
		t.Fatal("BeginSend after a finished send reported it unfinished")
	}
	// The mapping stored and the send forgotten in one commit.
	_, _ = db.Message.BeginSend(ctx, room, "t2")
	if err := db.Message.InsertSent(ctx, &Message{RoomID: room, EventID: "$e2", SenderJID: "a@x.test", StanzaID: "s2", Timestamp: time.Now()}, "t2"); err != nil {
		t.Fatal(err)
	}
	if m, err := db.Message.GetByEventID(ctx, room, "$e2"); err != nil || m == nil || m.StanzaID != "s2" {
		t.Errorf("mapping after InsertSent: %+v, %v", m, err)
	}
	if unfinished, _ := db.Message.BeginSend(ctx, room, "t2"); unfinished {
		t.Error("InsertSent left its send noted")
	}
	if err := db.Message.InsertSent(ctx, &Message{RoomID: "!other:hs.test", EventID: "$e3", StanzaID: "s3", Timestamp: time.Now()}, "t3"); err == nil {
		t.Error("a mapping of a room that is no portal was stored")
	}
	err := db.DoTxn(ctx, nil, func(ctx context.Context) error {
		return db.Message.InsertSent(ctx, &Message{RoomID: room, EventID: "$e4", StanzaID: "s4", Timestamp: time.Now()}, "t4")
	})
	if m, _ := db.Message.GetByEventID(ctx, room, "$e4"); err != nil || m == nil {
		t.Errorf("InsertSent inside a transaction: %v, stored %v", err, m != nil)
	}
	if err := db.Message.DeleteBefore(ctx, time.Now().Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if unfinished, _ := db.Message.BeginSend(ctx, room, "t1"); unfinished {
		t.Fatal("DeleteBefore kept an old pending send")
	}
}

// v1Schema is 00-latest.sql as released at version 1.
const v1Schema = `
CREATE TABLE portal (room_id TEXT PRIMARY KEY, alias TEXT NOT NULL, muc_local TEXT NOT NULL UNIQUE, created_at BIGINT NOT NULL);
CREATE TABLE puppet (jid TEXT PRIMARY KEY, mxid TEXT NOT NULL UNIQUE, registered BOOLEAN NOT NULL DEFAULT false, created_at BIGINT NOT NULL);
CREATE TABLE occupant (room_id TEXT NOT NULL REFERENCES portal(room_id) ON DELETE CASCADE, full_jid TEXT NOT NULL,
	user_jid TEXT NOT NULL REFERENCES puppet(jid) ON DELETE CASCADE, nick TEXT NOT NULL, joined_at BIGINT NOT NULL,
	PRIMARY KEY (room_id, full_jid));
CREATE INDEX occupant_user_idx ON occupant (user_jid);
CREATE TABLE message (room_id TEXT NOT NULL REFERENCES portal(room_id) ON DELETE CASCADE, event_id TEXT NOT NULL,
	sender_jid TEXT NOT NULL, stanza_id TEXT NOT NULL, timestamp BIGINT NOT NULL, PRIMARY KEY (room_id, event_id));
CREATE INDEX message_stanza_idx ON message (room_id, sender_jid, stanza_id);
CREATE INDEX message_timestamp_idx ON message (timestamp);
`

func TestReactions(t *testing.T) {
	ctx := context.Background()
	db := openTestDB(t)
	secret := []byte("the bridge's secret")
	room := id.RoomID("!r:hs.test")
	if err := db.Portal.Insert(ctx, &Portal{RoomID: room, Alias: "#r:hs.test", MUCLocal: "#r#hs.test", CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	for i, key := range []string{"👍", "🎉"} {
		r := &Reaction{RoomID: room, EventID: id.EventID("$r" + key), TargetEventID: "$msg", Sender: "@a:hs.test", KeyHash: KeyHash(secret, key), Timestamp: time.UnixMilli(int64(i))}
		if err := db.Reaction.Insert(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	rs, err := db.Reaction.GetBySender(ctx, room, "$msg", "@a:hs.test")
	if err != nil || len(rs) != 2 || rs[0].KeyHash != KeyHash(secret, "👍") {
		t.Fatalf("GetBySender = %+v, %v", rs, err)
	}
	if KeyHash(secret, "👍") == KeyHash(secret, "🎉") || len(KeyHash(secret, "x")) != 32 ||
		KeyHash(secret, "👍") == KeyHash([]byte("another secret"), "👍") {
		t.Error("KeyHash does not tell keys or secrets apart")
	}
	if other, _ := db.Reaction.GetBySender(ctx, room, "$msg", "@b:hs.test"); len(other) != 0 {
		t.Error("another sender's reactions were returned")
	}
	if err = db.Reaction.Delete(ctx, room, rs[0].EventID); err != nil {
		t.Fatal(err)
	}
	if r, _ := db.Reaction.GetByEventID(ctx, room, rs[0].EventID); r != nil {
		t.Error("a deleted reaction is still there")
	}
}

func TestGonePuppets(t *testing.T) {
	ctx := context.Background()
	db := openTestDB(t)
	room := id.RoomID("!room:hs.test")
	if err := db.Portal.Insert(ctx, &Portal{RoomID: room, Alias: "#x:hs.test", MUCLocal: "#x#hs.test", CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	for _, j := range []string{"gone@x.test", "recent@x.test", "back@x.test", "stayed@x.test"} {
		if err := db.Puppet.Upsert(ctx, &Puppet{JID: j, MXID: id.UserID("@_xmpp_" + j[:4] + ":hs.test"), CreatedAt: time.Now()}); err != nil {
			t.Fatal(err)
		}
	}
	long, cutoff := time.Now().Add(-48*time.Hour), time.Now().Add(-24*time.Hour)
	_ = db.Puppet.SetLeftAt(ctx, "gone@x.test", long)
	_ = db.Puppet.SetLeftAt(ctx, "recent@x.test", time.Now())
	// Left long ago but joined again: Upsert on join resets left_at.
	_ = db.Puppet.SetLeftAt(ctx, "back@x.test", long)
	if err := db.Puppet.Upsert(ctx, &Puppet{JID: "back@x.test", MXID: "@_xmpp_back:hs.test", Registered: true, CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	// Marked as left but still an occupant somewhere.
	_ = db.Puppet.SetLeftAt(ctx, "stayed@x.test", long)
	if err := db.Occupant.Upsert(ctx, &Occupant{RoomID: room, FullJID: "stayed@x.test/r", UserJID: "stayed@x.test", Nick: "S", JoinedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	gone, err := db.Puppet.GetGone(ctx, cutoff)
	if err != nil {
		t.Fatal(err)
	}
	if len(gone) != 1 || gone[0].JID != "gone@x.test" {
		t.Errorf("GetGone = %+v; want only gone@x.test", gone)
	}
	// The erase checks again: who came back after GetGone is kept.
	for j, want := range map[string]bool{"gone@x.test": true, "recent@x.test": false, "back@x.test": false, "stayed@x.test": false} {
		if deleted, err := db.Puppet.DeleteIfGone(ctx, j, cutoff); err != nil || deleted != want {
			t.Errorf("DeleteIfGone(%s) = %v, %v; want %v", j, deleted, err, want)
		}
	}
	if p, err := db.Puppet.GetByJID(ctx, "back@x.test"); err != nil || p == nil {
		t.Errorf("a puppet whose user came back was deleted: %v, %v", p, err)
	}
}

// TestRemotePortals: a portal into a MUC hosted elsewhere is found by its
// MUC's JID and never as a room the component hosts; its occupants,
// puppets, password and catch-up point are kept, and go with it.
func TestRemotePortals(t *testing.T) {
	ctx := context.Background()
	db := openTestDB(t)
	if err := db.Portal.Insert(ctx, &Portal{RoomID: "!hosted:hs.test", Alias: "#x:hs.test", MUCLocal: "#x#hs.test", CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	room := id.RoomID("!remote:hs.test")
	row := NewRemote(room, "#_xmpp_team=40conf.example:hs.test", "team@conf.example")
	if err := db.Portal.Insert(ctx, row); err != nil {
		t.Fatal(err)
	}
	if err := db.Portal.Insert(ctx, NewRemote("!other:hs.test", "#_xmpp_x:hs.test", "team@conf.example")); err == nil {
		t.Error("a second portal into the same MUC was accepted")
	}
	if got, err := db.Portal.GetByRemoteJID(ctx, "team@conf.example"); err != nil || got == nil || got.RoomID != room || !got.IsRemote() || got.IsDirect() {
		t.Fatalf("GetByRemoteJID = %+v, %v", got, err)
	}
	if got, _ := db.Portal.GetByRemoteJID(ctx, ""); got != nil {
		t.Errorf("GetByRemoteJID(\"\") found %+v", got)
	}
	if rows, _ := db.Portal.GetAll(ctx); len(rows) != 1 || rows[0].IsRemote() {
		t.Errorf("GetAll lists %+v; want the hosted room only", rows)
	}
	if got, _ := db.Portal.GetByMUCLocal(ctx, row.MUCLocal); got != nil {
		t.Errorf("GetByMUCLocal found a remote portal: %+v", got)
	}
	if rows, _ := db.Portal.GetRemote(ctx); len(rows) != 1 || rows[0].RemoteJID != "team@conf.example" {
		t.Errorf("GetRemote = %+v", rows)
	}
	if n, err := db.Portal.CountRemote(ctx); err != nil || n != 1 {
		t.Errorf("CountRemote = %d, %v", n, err)
	}

	if r, err := db.RemoteRoom.Get(ctx, room); err != nil || r.Password != "" || !r.LastTime.IsZero() {
		t.Fatalf("RemoteRoom.Get before any = %+v, %v", r, err)
	}
	if err := db.RemoteRoom.SetPassword(ctx, room, "s3cret"); err != nil {
		t.Fatal(err)
	}
	if err := db.RemoteRoom.SetLast(ctx, room, "sid-9", time.UnixMilli(9000)); err != nil {
		t.Fatal(err)
	}
	if r, _ := db.RemoteRoom.Get(ctx, room); r.Password != "s3cret" || r.LastStanzaID != "sid-9" || r.LastTime.UnixMilli() != 9000 {
		t.Errorf("RemoteRoom = %+v", r)
	}

	for _, o := range []*RemoteOccupant{{RoomID: room, UserID: "@mary:hs.test", Nick: "Mary", Active: true},
		{RoomID: room, UserID: "@bob:hs.test", Nick: "Bob", Active: true}, {RoomID: room, UserID: "@mary:hs.test", Nick: "Mary (Matrix)", Active: false}} {
		if err := db.RemoteOccupant.Upsert(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	occs, err := db.RemoteOccupant.GetByRoom(ctx, room)
	if err != nil || len(occs) != 2 || occs[1].UserID != "@mary:hs.test" || occs[1].Nick != "Mary (Matrix)" || occs[1].Active {
		t.Fatalf("RemoteOccupant.GetByRoom = %+v, %v", occs, err)
	}
	if n, _ := db.RemoteOccupant.CountActive(ctx); n != 1 {
		t.Errorf("CountActive = %d; want 1", n)
	}
	if err = db.RemoteOccupant.DeleteUser(ctx, "@bob:hs.test"); err != nil {
		t.Fatal(err)
	}
	if occs, _ = db.RemoteOccupant.GetByRoom(ctx, room); len(occs) != 1 {
		t.Errorf("after DeleteUser: %+v", occs)
	}

	if err = db.RoomPuppet.Upsert(ctx, &RoomPuppet{RoomID: room, Token: "n-abc", MXID: "@_xmpp_x:hs.test", Nick: "Zed"}); err != nil {
		t.Fatal(err)
	}
	if err = db.RoomPuppet.Upsert(ctx, &RoomPuppet{RoomID: room, Token: "n-abc", MXID: "@_xmpp_x:hs.test", Nick: "Zedd"}); err != nil {
		t.Fatal(err)
	}
	if ps, _ := db.RoomPuppet.GetByRoom(ctx, room); len(ps) != 1 || ps[0].Nick != "Zedd" {
		t.Errorf("RoomPuppet.GetByRoom = %+v", ps)
	}

	m := &Message{RoomID: room, EventID: "$e", SenderJID: "mary#hs.test@matrix.example", StanzaID: "$e", Timestamp: time.Now()}
	if err = db.Message.Insert(ctx, m); err != nil {
		t.Fatal(err)
	}
	if got, _ := db.Message.GetByRoomStanzaID(ctx, room, ""); got != nil {
		t.Error("a message without a room stanza-id was found by an empty one")
	}
	if err = db.Message.SetRoomStanzaID(ctx, room, "$e", "rsid-1"); err != nil {
		t.Fatal(err)
	}
	if got, _ := db.Message.GetByRoomStanzaID(ctx, room, "rsid-1"); got == nil || got.EventID != "$e" || got.RoomStanzaID != "rsid-1" {
		t.Errorf("GetByRoomStanzaID = %+v", got)
	}

	if err = db.Portal.Delete(ctx, room); err != nil {
		t.Fatal(err)
	}
	if occs, _ = db.RemoteOccupant.GetByRoom(ctx, room); len(occs) != 0 {
		t.Error("occupants outlived their portal")
	}
	if ps, _ := db.RoomPuppet.GetByRoom(ctx, room); len(ps) != 0 {
		t.Error("room puppets outlived their portal")
	}
	if r, _ := db.RemoteRoom.Get(ctx, room); r.Password != "" {
		t.Error("the password outlived its portal")
	}
}

// TestKeyWait: events waiting for their room key come back in the order
// they were noted, across rooms; a handled one is forgotten; noting one
// twice keeps its first place.
func TestKeyWait(t *testing.T) {
	ctx := context.Background()
	db := openTestDB(t)
	for _, w := range []KeyWait{{"!b:hs.test", "$1"}, {"!a:hs.test", "$2"}, {"!b:hs.test", "$3"}, {"!b:hs.test", "$1"}} {
		if err := db.KeyWait.Add(ctx, w.RoomID, w.EventID); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.KeyWait.Delete(ctx, "!a:hs.test", "$2"); err != nil {
		t.Fatal(err)
	}
	got, err := db.KeyWait.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if want := []KeyWait{{"!b:hs.test", "$1"}, {"!b:hs.test", "$3"}}; !slices.Equal(got, want) {
		t.Errorf("List = %v; want %v", got, want)
	}
}

// TestSchemasAgree: a fresh PostgreSQL database has the tables and
// columns of a fresh SQLite one (the upgrades are one set for both).
func TestSchemasAgree(t *testing.T) {
	if dbtest.Postgres(t) == "" {
		t.Skip("needs PostgreSQL (" + dbtest.EnvPostgres + ")")
	}
	lite, err := Open(context.Background(), Config{Type: TypeSQLite, URI: "file:" + filepath.Join(t.TempDir(), "lite.db")}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer lite.Close()
	if got, want := columns(t, openTestDB(t)), columns(t, lite); got != want {
		t.Errorf("PostgreSQL schema:\n%s\nSQLite schema:\n%s", got, want)
	}
}

// TestContacts: a Matrix user's decisions about XMPP users, one per pair,
// the last one standing; forget removes a JID from everyone's.
func TestContacts(t *testing.T) {
	ctx := context.Background()
	db := openTestDB(t)
	set := func(user id.UserID, jid, state string) {
		t.Helper()
		if err := db.Contact.Set(ctx, user, jid, state); err != nil {
			t.Fatal(err)
		}
	}
	set("@mary:hs.test", "alice@xmpp.test", ContactPending)
	set("@mary:hs.test", "alice@xmpp.test", ContactAllowed)
	set("@mary:hs.test", "mallory@evil.test", ContactBlocked)
	set("@sam:hs.test", "alice@xmpp.test", ContactDenied)
	if s, err := db.Contact.State(ctx, "@mary:hs.test", "alice@xmpp.test"); err != nil || s != ContactAllowed {
		t.Errorf("mary about alice: %q, %v; want allowed", s, err)
	}
	if s, err := db.Contact.State(ctx, "@mary:hs.test", "bob@xmpp.test"); err != nil || s != "" {
		t.Errorf("mary about bob: %q, %v; want nothing", s, err)
	}
	list, err := db.Contact.List(ctx, "@mary:hs.test")
	if err != nil || len(list) != 2 || list[0].JID != "alice@xmpp.test" || list[1].State != ContactBlocked {
		t.Errorf("mary's contacts: %+v, %v", list, err)
	}
	if err = db.Contact.DeleteByJID(ctx, "alice@xmpp.test"); err != nil {
		t.Fatal(err)
	}
	if s, _ := db.Contact.State(ctx, "@sam:hs.test", "alice@xmpp.test"); s != "" {
		t.Errorf("after forgetting alice, sam's decision is still %q", s)
	}
	if err = db.Contact.Delete(ctx, "@mary:hs.test", "mallory@evil.test"); err != nil {
		t.Fatal(err)
	}
	if list, _ = db.Contact.List(ctx, "@mary:hs.test"); len(list) != 0 {
		t.Errorf("mary's contacts after deleting both: %+v", list)
	}
}
