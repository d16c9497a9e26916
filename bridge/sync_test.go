package bridge

import (
	"testing"

	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/mxpp/mxpp/matrix"
)

// TestEventFilterWantSync: the bot's sync brings room events in "on"
// mode always, in "off" never, and in "auto" until the homeserver was seen
// pushing both redactions and ephemeral events; what sync brings of a kind
// the homeserver pushes is dropped in auto mode, and a pushed event that
// came by sync already is not handled twice.
func TestEventFilterWantSync(t *testing.T) {
	if newEventFilter(SyncOff).wantSync() || !newEventFilter(SyncOn).wantSync() {
		t.Fatal("off wants the sync, or on does not")
	}
	f := newEventFilter(SyncAuto)
	if !f.wantSync() {
		t.Fatal("auto does not want the sync before anything was pushed")
	}
	synced := &event.Event{ID: "$r1", Type: event.EventRedaction}
	synced.Mautrix.EventSource = event.SourceJoin | event.SourceTimeline
	if !matrix.FromSync(synced) || !f.accept(synced) {
		t.Fatal("a redaction from sync was not taken before the homeserver pushed any")
	}
	if f.accept(&event.Event{ID: "$r1", Type: event.EventRedaction}) {
		t.Error("the same redaction pushed after it came by sync was taken twice")
	}
	if !f.wantSync() {
		t.Fatal("auto stopped wanting the sync after a pushed redaction alone")
	}
	typing := &event.Event{Type: event.EphemeralEventTyping, RoomID: id.RoomID("!r:hs.test")}
	typing.Type.Class = event.EphemeralEventType
	if !f.accept(typing) {
		t.Fatal("a pushed typing event was not taken")
	}
	if f.wantSync() {
		t.Error("auto still wants the sync after redactions and ephemeral events were pushed")
	}
	late := &event.Event{ID: "$r2", Type: event.EventRedaction}
	late.Mautrix.EventSource = event.SourceJoin | event.SourceTimeline
	if f.accept(late) {
		t.Error("auto took a redaction from sync after the homeserver pushed redactions")
	}
}
