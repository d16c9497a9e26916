package portal

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
)

// timelineHS is a homeserver holding one room's timeline; pagination token
// "pI" is the place before event I.
type timelineHS struct {
	fakeMatrix
	evts []*event.Event
	// overlap makes context tokens point at the event itself, so that
	// reading on from them returns the context again.
	overlap bool
}

func (h *timelineHS) BotID() id.UserID { return "@bot:hs.test" }

// EventContext answers as Dendrite does by default: up to ten events on
// either side, with the tokens beyond them.
func (h *timelineHS) EventContext(_ context.Context, _ id.RoomID, _ id.UserID, evtID id.EventID) ([]*event.Event, string, []*event.Event, string, error) {
	for i, evt := range h.evts {
		if evt.ID == evtID {
			lo, hi := max(i-10, 0), min(i+11, len(h.evts))
			beforeToken, afterToken := "p"+strconv.Itoa(lo), "p"+strconv.Itoa(hi)
			if h.overlap {
				beforeToken, afterToken = "p"+strconv.Itoa(i+1), "p"+strconv.Itoa(i)
			}
			if lo == 0 && !h.overlap {
				beforeToken = ""
			}
			if hi == len(h.evts) && !h.overlap {
				afterToken = ""
			}
			return h.evts[lo:i], beforeToken, h.evts[i+1 : hi], afterToken, nil
		}
	}
	return nil, "", nil, "", mautrix.MNotFound
}

func (h *timelineHS) History(_ context.Context, _ id.RoomID, _ id.UserID, from string, backward bool, limit int) ([]*event.Event, string, error) {
	pos := len(h.evts)
	if from != "" {
		pos, _ = strconv.Atoi(strings.TrimPrefix(from, "p"))
	}
	if backward {
		lo := max(pos-limit, 0)
		next := "p" + strconv.Itoa(lo)
		if lo == 0 {
			next = ""
		}
		return h.evts[lo:pos], next, nil
	}
	hi := min(pos+limit, len(h.evts))
	next := "p" + strconv.Itoa(hi)
	if hi == len(h.evts) {
		next = ""
	}
	return h.evts[pos:hi], next, nil
}

func TestArchivePage(t *testing.T) {
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	hs := &timelineHS{}
	for i := range 250 {
		sender, body := id.UserID("@mary:hs.test"), fmt.Sprintf("m%d", i)
		if i%10 == 9 {
			sender = "@bot:hs.test" // not in the archive
		}
		hs.evts = append(hs.evts, &event.Event{ID: id.EventID(fmt.Sprintf("$e%d", i)), Sender: sender,
			Timestamp: base.Add(time.Duration(i) * time.Minute).UnixMilli(), Type: event.EventMessage,
			Content: event.Content{Parsed: &event.MessageEventContent{MsgType: event.MsgText, Body: body}}})
	}
	p := testPortal()
	p.deps.Matrix = hs
	ids := func(evts []*event.Event) string {
		var out []string
		for _, e := range evts {
			out = append(out, strings.TrimPrefix(e.ID.String(), "$e"))
		}
		return strings.Join(out, ",")
	}
	str := func(s string) *string { return &s }
	for _, overlap := range []bool{false, true} {
		hs.overlap = overlap
		for _, tc := range []struct {
			name     string
			q        archiveQuery
			want     string
			complete bool
		}{
			{"last page", archiveQuery{before: str(""), max: 3}, "246,247,248", false},
			{"page before", archiveQuery{before: str("$e246"), max: 3}, "243,244,245", false},
			{"first page before", archiveQuery{before: str("$e3"), max: 5}, "0,1,2", true},
			{"after", archiveQuery{after: str("$e245"), max: 10}, "246,247,248", true},
			{"after, a page", archiveQuery{after: str("$e10"), max: 3}, "11,12,13", false},
			{"from a time", archiveQuery{start: base.Add(240 * time.Minute), max: 4}, "240,241,242,243", false},
			{"from a time to a time", archiveQuery{start: base.Add(240 * time.Minute), end: base.Add(242 * time.Minute), max: 4}, "240,241,242", true},
			{"last page up to a time", archiveQuery{before: str(""), end: base.Add(5 * time.Minute), max: 10}, "0,1,2,3,4,5", true},
			{"from the beginning", archiveQuery{max: 2}, "0,1", false},
			{"after, past the context", archiveQuery{after: str("$e100"), max: 20}, "101,102,103,104,105,106,107,108,110,111,112,113,114,115,116,117,118,120,121,122", false},
			{"before, past the context", archiveQuery{before: str("$e130"), max: 15}, "113,114,115,116,117,118,120,121,122,123,124,125,126,127,128", false},
		} {
			got, complete, err := p.archivePage(context.Background(), "@_xmpp_alice=40xmpp.test:hs.test", tc.q)
			if err != nil {
				t.Errorf("%s: %v", tc.name, err)
				continue
			}
			if ids(got) != tc.want || complete != tc.complete {
				t.Errorf("%s (overlapping tokens %v): %s, complete %v; want %s, %v", tc.name, overlap, ids(got), complete, tc.want, tc.complete)
			}
		}
	}
	if _, _, err := p.archivePage(context.Background(), "", archiveQuery{after: str("$nope"), max: 3}); err == nil {
		t.Error("paging after an unknown id worked")
	}
}
