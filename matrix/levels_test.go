package matrix

import (
	"context"
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"testing"

	"maunium.net/go/mautrix/id"
)

// Rooms whose power levels give the same event levels share one table;
// a room with other levels keeps its own, with its own values.
func TestRoomInfoSharesEventLevels(t *testing.T) {
	levels := map[string]string{
		"!a:hs.test": `{"m.room.name": 50, "m.room.topic": 50, "m.room.power_levels": 100}`,
		"!b:hs.test": `{"m.room.power_levels": 100, "m.room.topic": 50, "m.room.name": 50}`,
		"!c:hs.test": `{"m.room.name": 100, "m.room.topic": 50, "m.room.power_levels": 100}`,
	}
	c := testConnector(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if r.URL.Path == "/_matrix/client/v3/register" {
			fmt.Fprint(w, `{"user_id": "@xmppbot:hs.test"}`)
			return
		}
		rest := strings.TrimPrefix(r.URL.Path, "/_matrix/client/v3/rooms/")
		if room, ok := strings.CutSuffix(rest, "/join"); ok {
			fmt.Fprintf(w, `{"room_id": %q}`, room)
			return
		}
		room, ok := strings.CutSuffix(rest, "/state")
		if !ok || levels[room] == "" {
			http.NotFound(w, r)
			return
		}
		fmt.Fprintf(w, `[{"type": "m.room.power_levels", "state_key": "", "sender": "@mary:hs.test", "event_id": "$p",
			"content": {"users": {"@mary:hs.test": 100}, "events": %s}}]`, levels[room])
	}), nil, nil)
	tables := map[string]map[string]int{}
	for room := range levels {
		info, err := c.RoomInfo(context.Background(), id.RoomID(room))
		if err != nil {
			t.Fatal(err)
		}
		tables[room] = info.PowerLevels.Events
	}
	same := func(a, b map[string]int) bool { return reflect.ValueOf(a).Pointer() == reflect.ValueOf(b).Pointer() }
	if !same(tables["!a:hs.test"], tables["!b:hs.test"]) {
		t.Error("two rooms with the same event levels hold two tables")
	}
	if same(tables["!a:hs.test"], tables["!c:hs.test"]) {
		t.Error("a room with other event levels got another room's table")
	}
	if got := tables["!c:hs.test"]["m.room.name"]; got != 100 {
		t.Errorf("room c: m.room.name needs %d, want 100", got)
	}
	if got := tables["!a:hs.test"]["m.room.name"]; got != 50 {
		t.Errorf("room a: m.room.name needs %d, want 50", got)
	}
}

// The tables kept for sharing stop growing at their bound.
func TestLevelTablesBounded(t *testing.T) {
	var lt levelTables
	for i := range maxLevelTables + 10 {
		lt.share(map[string]int{"m.room.name": i})
	}
	if n := len(lt.tables); n != maxLevelTables {
		t.Errorf("%d tables kept, want %d", n, maxLevelTables)
	}
	past := map[string]int{"m.room.name": maxLevelTables + 1}
	if got := lt.share(past); got["m.room.name"] != maxLevelTables+1 {
		t.Errorf("a table past the bound came back as %v", got)
	}
}
