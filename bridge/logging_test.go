package bridge

import (
	"bytes"
	"strings"
	"testing"

	"github.com/rs/zerolog"
)

// TestBodyFilter: request bodies, which hold message text, never reach
// the log below trace level, nor at all with redact_bodies; the rest of
// the line does.
func TestBodyFilter(t *testing.T) {
	for _, tc := range []struct {
		name      string
		level     zerolog.Level
		keepTrace bool
		wantBody  bool
	}{
		{"error", zerolog.ErrorLevel, true, false},
		{"debug", zerolog.DebugLevel, true, false},
		{"trace", zerolog.TraceLevel, true, true},
		{"trace, redacted", zerolog.TraceLevel, false, false},
	} {
		var out bytes.Buffer
		log := zerolog.New(bodyFilter{out: &out, keepTrace: tc.keepTrace}).Level(zerolog.TraceLevel)
		log.WithLevel(tc.level).RawJSON("req_body", []byte(`{"msgtype":"m.text","body":"zebra secret"}`)).
			Str("url", "http://hs/send").Msg("Request failed")
		log.Info().Str("other", "zebra kept").Msg("no body here")
		got := out.String()
		if strings.Contains(got, "zebra secret") != tc.wantBody {
			t.Errorf("%s: body in the log: %v; want %v:\n%s", tc.name, !tc.wantBody, tc.wantBody, got)
		}
		if !strings.Contains(got, "http://hs/send") || !strings.Contains(got, "Request failed") || !strings.Contains(got, "zebra kept") {
			t.Errorf("%s: the rest of the log is missing:\n%s", tc.name, got)
		}
	}
	// Pretty printing comes after the filter.
	var out bytes.Buffer
	log := zerolog.New(bodyFilter{out: zerolog.ConsoleWriter{Out: &out, NoColor: true}})
	log.Error().RawJSON("req_body", []byte(`{"body":"zebra secret"}`)).Msg("Request failed")
	if strings.Contains(out.String(), "zebra secret") || !strings.Contains(out.String(), "[redacted]") {
		t.Errorf("pretty log: %s", out.String())
	}
}
