package roomloop

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/rs/zerolog"
)

// TestWithFields: the fields reach every line written, nested loggers
// add theirs, and a level that is off writes nothing.
func TestWithFields(t *testing.T) {
	var buf bytes.Buffer
	base := zerolog.New(&buf).Level(zerolog.InfoLevel).With().Str("component", "portal").Logger()
	room := WithFields(base, "room_id", "!r:hs.test", "muc", "r@m.test")
	msg := WithFields(room, "event_id", "$e")
	msg.Info().Str("own", "x").Msg("hello")
	msg.Debug().Msg("off")
	room.Info().Msg("room only")
	lines := bytes.Split(bytes.TrimSpace(buf.Bytes()), []byte("\n"))
	if len(lines) != 2 {
		t.Fatalf("%d lines written; want 2:\n%s", len(lines), buf.String())
	}
	want := []map[string]string{
		{"component": "portal", "room_id": "!r:hs.test", "muc": "r@m.test", "event_id": "$e", "own": "x", "message": "hello"},
		{"component": "portal", "room_id": "!r:hs.test", "muc": "r@m.test", "message": "room only"},
	}
	for i, line := range lines {
		var got map[string]string
		if err := json.Unmarshal(line, &got); err != nil {
			t.Fatalf("line %d: %v: %s", i, err, line)
		}
		delete(got, "level")
		if len(got) != len(want[i]) {
			t.Errorf("line %d: %v; want %v", i, got, want[i])
		}
		for k, v := range want[i] {
			if got[k] != v {
				t.Errorf("line %d: %s=%q; want %q", i, k, got[k], v)
			}
		}
	}
}
