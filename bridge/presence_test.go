package bridge

import (
	"slices"
	"testing"
	"time"

	"maunium.net/go/mautrix/event"
)

// TestThrottle: the first change goes at once, those within the interval
// wait and only the newest goes, a repeat of what went goes nowhere.
func TestThrottle(t *testing.T) {
	var sent []string
	th := newThrottle(time.Hour, func(a, b string) bool { return a == b }, func(key, v string) { sent = append(sent, key+"="+v) })
	th.update("u", "a")
	th.update("u", "b")
	th.update("u", "c")
	th.update("v", "x")
	if want := []string{"u=a", "v=x"}; !slices.Equal(sent, want) {
		t.Fatalf("sent %v; want %v", sent, want)
	}
	th.flush("u") // the interval ended
	th.update("u", "c")
	if want := []string{"u=a", "v=x", "u=c"}; !slices.Equal(sent, want) {
		t.Fatalf("sent %v; want %v", sent, want)
	}
	// Changes that come back to what went are no change.
	th.update("u", "d")
	th.update("u", "c")
	th.flush("u")
	if len(sent) != 3 {
		t.Fatalf("sent %v after a change and back", sent)
	}
	if v, ok := th.last("u"); !ok || v != "c" {
		t.Errorf("last = %q, %v; want c", v, ok)
	}
	if _, ok := th.last("w"); ok {
		t.Error("last knows a key never updated")
	}
}

func TestShownOf(t *testing.T) {
	now := time.Unix(1700000000, 0)
	for _, tc := range []struct {
		c    event.PresenceEventContent
		want shown
	}{
		{event.PresenceEventContent{Presence: event.PresenceOnline, StatusMessage: "hi", LastActiveAgo: 5000}, shown{show: "", status: "hi"}},
		{event.PresenceEventContent{Presence: event.PresenceUnavailable, LastActiveAgo: 60000}, shown{show: "away", idleSince: now.Add(-time.Minute)}},
		{event.PresenceEventContent{Presence: event.PresenceOffline, StatusMessage: "bye"}, shown{offline: true, status: "bye"}},
		{event.PresenceEventContent{Presence: event.PresenceUnavailable, LastActiveAgo: 60000, CurrentlyActive: true}, shown{show: "away"}},
	} {
		if got := shownOf(&tc.c, now); got != tc.want {
			t.Errorf("shownOf(%+v) = %+v; want %+v", tc.c, got, tc.want)
		}
	}
}
