package msgconv_test

import (
	"testing"

	"maunium.net/go/mautrix/event"

	"github.com/mxpp/mxpp/msgconv"
	"github.com/mxpp/mxpp/roomloop"
)

// TestMetricLabels: what senders choose (event types, msgtypes) never
// becomes a metric label of its own, so nobody can grow the metrics
// without bound.
func TestMetricLabels(t *testing.T) {
	for typ, want := range map[string]string{
		"m.room.message": "matrix_room.message", "m.reaction": "matrix_reaction", "m.typing": "matrix_typing",
		"org.example.x1": "matrix_other", "m.room.message2": "matrix_other", "": "matrix_other",
	} {
		if got := roomloop.Kind(&event.Event{Type: event.Type{Type: typ}}); got != want {
			t.Errorf("roomloop.Kind(%q) = %q; want %q", typ, got, want)
		}
	}
	for msgtype, want := range map[event.MessageType]string{
		event.MsgText: "text", event.MsgEmote: "emote", event.MsgNotice: "notice", event.MsgImage: "media",
		"m.evil1": "other", "x": "other", "": "other",
	} {
		if got := msgconv.MessageKind(&event.MessageEventContent{MsgType: msgtype}); got != want {
			t.Errorf("msgconv.MessageKind(%q) = %q; want %q", msgtype, got, want)
		}
	}
}
