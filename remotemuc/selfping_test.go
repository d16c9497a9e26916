package remotemuc

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"mellium.im/xmpp/stanza"

	"github.com/mxpp/mxpp/xmpp"
)

// TestStillJoined reads self-ping answers as XEP-0410 §3.2 says.
func TestStillJoined(t *testing.T) {
	for _, tc := range []struct {
		name          string
		err           error
		joined, known bool
	}{
		{"answered", nil, true, true},
		{"client without ping", stanza.Error{Condition: stanza.ServiceUnavailable}, true, true},
		{"not implemented", stanza.Error{Condition: stanza.FeatureNotImplemented}, true, true},
		{"nick just changed", stanza.Error{Condition: stanza.ItemNotFound}, true, true},
		{"not an occupant", stanza.Error{Condition: stanza.NotAcceptable}, false, true},
		{"other refusal", stanza.Error{Condition: stanza.BadRequest}, false, true},
		{"room's server unreachable", stanza.Error{Condition: stanza.RemoteServerNotFound}, false, false},
		{"room's server slow", stanza.Error{Condition: stanza.RemoteServerTimeout}, false, false},
		{"no answer", fmt.Errorf("%w: %w", xmpp.ErrNoReply, context.DeadlineExceeded), false, false},
		{"not sent", errors.New("not connected"), false, false},
	} {
		if joined, known := stillJoined(tc.err); joined != tc.joined || known != tc.known {
			t.Errorf("%s: stillJoined = %v, %v; want %v, %v", tc.name, joined, known, tc.joined, tc.known)
		}
	}
}
