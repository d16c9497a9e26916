package matrix

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
)

// TestRoomInfo: the room's state as the bridge reads it, and the creators
// of a room version that gives them power above every level count as such
// from the little of the create event that is kept.
func TestRoomInfo(t *testing.T) {
	const state = `[
	{"type": "m.room.create", "state_key": "", "sender": "@mary:hs.test", "event_id": "$c", "room_id": "!r:hs.test",
	 "content": {"room_version": "12", "additional_creators": ["@ann:hs.test"]}},
	{"type": "m.room.name", "state_key": "", "sender": "@ann:hs.test", "event_id": "$n", "content": {"name": "Lobby"}},
	{"type": "m.room.join_rules", "state_key": "", "sender": "@mary:hs.test", "event_id": "$j", "content": {"join_rule": "public"}},
	{"type": "m.room.power_levels", "state_key": "", "sender": "@mary:hs.test", "event_id": "$p", "content": {"users": {"@bob:hs.test": 50}}},
	{"type": "m.room.member", "state_key": "@mary:hs.test", "sender": "@mary:hs.test", "event_id": "$m1", "content": {"membership": "join", "displayname": "Mary"}},
	{"type": "m.room.member", "state_key": "@bob:hs.test", "sender": "@mary:hs.test", "event_id": "$m2", "content": {"membership": "invite"}},
	{"type": "m.room.member", "state_key": "@eve:hs.test", "sender": "@mary:hs.test", "event_id": "$m3", "content": {"membership": "ban"}}
	]`
	c := testConnector(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case "/_matrix/client/v3/rooms/!r:hs.test/state":
			w.Write([]byte(state))
		case "/_matrix/client/v3/rooms/!old:hs.test/state":
			w.Write([]byte(strings.Replace(state, `"12"`, `"10"`, 1)))
		case "/_matrix/client/v3/register":
			w.Write([]byte(`{"user_id": "@xmppbot:hs.test"}`))
		case "/_matrix/client/v3/rooms/!r:hs.test/join":
			w.Write([]byte(`{"room_id": "!r:hs.test"}`))
		case "/_matrix/client/v3/rooms/!old:hs.test/join":
			w.Write([]byte(`{"room_id": "!old:hs.test"}`))
		default:
			http.NotFound(w, r)
		}
	}), nil, nil)
	info, err := c.RoomInfo(context.Background(), "!r:hs.test")
	if err != nil {
		t.Fatal(err)
	}
	if info.Name != "Lobby" || info.NameSetter != "@ann:hs.test" || info.JoinRule != event.JoinRulePublic {
		t.Errorf("name %q by %s, join rule %s", info.Name, info.NameSetter, info.JoinRule)
	}
	if len(info.Members) != 1 || info.Members["@mary:hs.test"].Displayname != "Mary" || !info.Invited["@bob:hs.test"] || !info.Banned["@eve:hs.test"] {
		t.Errorf("members %v, invited %v, banned %v", info.Members, info.Invited, info.Banned)
	}
	pl := info.PowerLevels
	for user, want := range map[id.UserID]bool{"@mary:hs.test": true, "@ann:hs.test": true, "@bob:hs.test": false} {
		if got := pl.GetUserLevel(user) > 100; got != want {
			t.Errorf("%s above every level: %v; want %v", user, got, want)
		}
	}
	if pl.GetUserLevel("@bob:hs.test") != 50 {
		t.Errorf("bob's level %d; want 50", pl.GetUserLevel("@bob:hs.test"))
	}
	if create := pl.CreateEvent; create.Content.VeryRaw != nil {
		t.Error("the create event's raw JSON is kept")
	}
	// Before version 12 creators have the level the power levels give.
	if info, err = c.RoomInfo(context.Background(), "!old:hs.test"); err != nil {
		t.Fatal(err)
	}
	if info.PowerLevels.CreateEvent != nil || info.PowerLevels.GetUserLevel("@mary:hs.test") != 0 {
		t.Errorf("version 10: create event kept %v, Mary's level %d; want none, 0", info.PowerLevels.CreateEvent != nil, info.PowerLevels.GetUserLevel("@mary:hs.test"))
	}
}
