package bridge

import (
	"context"
	"encoding/json"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/mxpp/mxpp/database"
)

// TestAuditActionsListed: the privacy report's list of audit actions is
// the code's: every action an audit line writes is listed, and every listed
// one is written somewhere.
func TestAuditActionsListed(t *testing.T) {
	re := regexp.MustCompile(`Str\("action", "([a-z_]+)"\)`)
	used := map[string]bool{}
	err := filepath.WalkDir("..", func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return err
		}
		src, err := os.ReadFile(path)
		for _, m := range re.FindAllSubmatch(src, -1) {
			used[string(m[1])] = true
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := slices.Sorted(maps.Keys(used)), slices.Sorted(maps.Keys(auditActions)); !slices.Equal(got, want) {
		t.Errorf("audit actions in the code %q; the report lists %q", got, want)
	}
}

// TestPrivacyReport: the report follows the config and the database: the
// rooms and their rule, the domain lists, the permissions, the tables with
// their rows and the schema's words, logging, encryption, files and the
// retention periods; changing a key changes its line.
func TestPrivacyReport(t *testing.T) {
	ctx := context.Background()
	cfg := DefaultConfig()
	cfg.Homeserver.Domain = "hs.test"
	cfg.XMPP.Domain = "matrix.xmpp.test"
	cfg.XMPP.AllowedDomains = []string{"xmpp.test", "*.partner.example"}
	cfg.Bridge.Permissions = map[string]string{"*": "user", "@boss:hs.test": "admin"}
	cfg.Database = database.Config{Type: database.TypeSQLite, URI: "file:" + filepath.Join(t.TempDir(), "mxpp.db")}
	db, err := database.Open(ctx, cfg.Database, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err = db.Portal.Insert(ctx, &database.Portal{RoomID: "!a:hs.test", Alias: "#lobby:hs.test", MUCLocal: "#lobby#hs.test"}); err != nil {
		t.Fatal(err)
	}
	if err = db.Settings.Put(ctx, &database.RoomSettings{RoomID: "!a:hs.test", Exposed: true, ExposedBy: "@boss:hs.test",
		ExposedAt: time.Now(), DeniedDomains: []string{"bad.example"}}); err != nil {
		t.Fatal(err)
	}
	if err = db.Portal.Insert(ctx, database.NewDirect("!d:hs.test", "@mary:hs.test", "alice@xmpp.test")); err != nil {
		t.Fatal(err)
	}

	report := func() (string, *PrivacyReport) {
		t.Helper()
		r, err := BuildPrivacyReport(ctx, &cfg, db)
		if err != nil {
			t.Fatal(err)
		}
		var buf strings.Builder
		if err = r.WriteJSON(&buf); err != nil {
			t.Fatal(err)
		}
		var back PrivacyReport
		if err = json.Unmarshal([]byte(buf.String()), &back); err != nil {
			t.Fatalf("the JSON does not read back: %v", err)
		}
		return r.Markdown(), r
	}
	has := func(md string, parts ...string) {
		t.Helper()
		for _, p := range parts {
			if !strings.Contains(md, p) {
				t.Errorf("the report lacks %q:\n%s", p, md)
			}
		}
	}

	md, r := report()
	has(md, "Exposure `opt-in`", "reachable from XMPP: 1", "`#lobby:hs.test`", "MUC `#lobby#hs.test@matrix.xmpp.test`",
		"exposed by @boss:hs.test", "own denied domains `bad.example`", "allowed: `xmpp.test`, `*.partner.example`",
		"`@boss:hs.test: admin`", "Direct chats: on, 1 open", "`bridge.subscriptions`): `ask`", "(`bridge.user_search`): `off`", "Presence (`bridge.presence`): on", "at level info", "no message bodies", "kept 720h0m0s")
	if len(r.Rooms) != 1 || !r.Rooms[0].Reachable {
		t.Errorf("rooms %+v; want the exposed one, reachable", r.Rooms)
	}
	var portalRow *ReportTable
	for i, tb := range r.Storage.Tables {
		if tb.Name == "portal" {
			portalRow = &r.Storage.Tables[i]
		}
		if tb.Holds == "" {
			t.Errorf("table %s is not described", tb.Name)
		}
	}
	if portalRow == nil || portalRow.Rows != 2 || !strings.Contains(portalRow.Holds, "A portal is a Matrix room") {
		t.Errorf("the portal table in the report: %+v; want 2 rows and the schema's comment", portalRow)
	}

	cfg.Bridge.Exposure = ExposureOff
	cfg.Logging.Level, cfg.Logging.RedactBodies = "trace", false
	cfg.Encryption.Allow = false
	cfg.Bridge.Media.MaxSize = 0
	cfg.Bridge.MessageRetention = 48 * time.Hour
	cfg.XMPP.DeniedDomains = []string{"evil.example"}
	cfg.Bridge.Presence.Enabled = false
	md, r = report()
	has(md, "Presence (`bridge.presence`): off", "Exposure `off`", "reachable from XMPP: 0", "exposure is off", "message bodies included",
		"Encrypted rooms are not bridged", "are not fetched", "kept 48h0m0s", "denied: `evil.example`")
	if r.Rooms[0].Reachable {
		t.Error("a room is reachable with exposure off")
	}
}
