package roomloop

import (
	"context"
	"testing"
	"time"

	"maunium.net/go/mautrix/event"
)

func TestLateStamp(t *testing.T) {
	var l Lateness
	base := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	msg := func(at time.Time, age time.Duration) *event.Event {
		return &event.Event{Timestamp: at.UnixMilli(), Unsigned: event.Unsigned{Age: age.Milliseconds()}}
	}
	steps := []struct {
		name  string
		evt   *event.Event
		stamp bool
	}{
		{"first", msg(base, 0), false},
		{"in order", msg(base.Add(time.Second), 0), false},
		{"same time", msg(base.Add(time.Second), 0), false},
		{"a moment older", msg(base.Add(time.Second-time.Millisecond), 0), true},
		{"much newer", msg(base.Add(time.Minute), 0), false},
		{"redelivered after later ones", msg(base.Add(2*time.Second), 0), true},
		{"in order again", msg(base.Add(time.Minute+time.Second), 0), false},
		{"in order, but the homeserver says it is old", msg(base.Add(2*time.Minute), 2*LateAge), true},
		{"no timestamp", &event.Event{}, false},
	}
	for _, s := range steps {
		d := l.Stamp(context.Background(), s.evt, "room@muc.test")
		if (d != nil) != s.stamp {
			t.Fatalf("%s: stamp %v, want one: %v", s.name, d, s.stamp)
		}
		if d != nil && (!d.Stamp.Equal(time.UnixMilli(s.evt.Timestamp)) || d.From != "room@muc.test") {
			t.Errorf("%s: stamp %+v", s.name, d)
		}
	}
	if !l.newest.Equal(base.Add(2 * time.Minute)) {
		t.Errorf("newest = %v", l.newest)
	}
}
