package portal

import (
	"strconv"

	"maunium.net/go/mautrix/id"

	"github.com/mxpp/mxpp/xmpp"
)

// A Matrix event goes out as one stanza per occupant session (and a
// caption, a correction's fallback...). When the component link fails
// halfway, the homeserver's retry would send it again to every session,
// also to those that had it. sentStanzas remembers, for an event that did
// not reach every session, which stanzas went out on which stream: the
// retry skips those whose stream is still up (what was written to a live
// stream reaches the server), and sends again what went out on a stream
// that broke since, since XEP-0114 cannot tell what a dying stream took
// (such a copy carries the same id and stanza-id, by which clients know
// it).
type sentStanzas struct {
	current id.EventID
	out     map[string]uint64 // the current event's: stanza key → link
	// seq counts the current event's stanzas per addressee and id: one
	// event may send several alike (a rename's unavailable and available
	// presence), and a retry sends them in the same order.
	seq map[string]int

	partial map[id.EventID]map[string]uint64 // events that are to be retried
	order   []id.EventID                     // of partial, oldest first
}

// maxPartial bounds the events whose partial delivery is remembered.
const maxPartial = 256

// begin starts noting the stanzas of a Matrix event, with what an earlier
// attempt sent.
func (s *sentStanzas) begin(evtID id.EventID) {
	s.current, s.out, s.seq = evtID, s.partial[evtID], nil
	if evtID != "" && s.out == nil {
		s.out = map[string]uint64{}
	}
}

// end keeps what an undelivered event sent for its retry, and forgets a
// delivered one.
func (s *sentStanzas) end(evtID id.EventID, delivered bool) {
	out := s.out
	s.current, s.out, s.seq = "", nil, nil
	if evtID == "" {
		return
	}
	if delivered {
		if _, ok := s.partial[evtID]; ok {
			delete(s.partial, evtID)
			for i, e := range s.order {
				if e == evtID {
					s.order = append(s.order[:i], s.order[i+1:]...)
					break
				}
			}
		}
		return
	}
	if len(out) == 0 {
		return
	}
	if s.partial == nil {
		s.partial = map[id.EventID]map[string]uint64{}
	}
	if _, ok := s.partial[evtID]; !ok {
		s.order = append(s.order, evtID)
	}
	s.partial[evtID] = out
	if len(s.order) > maxPartial {
		delete(s.partial, s.order[0])
		s.order = s.order[1:]
	}
}

// key names a stanza of the current event by its addressee, its id and how
// many alike the event sent before it; "" when no Matrix event is being
// handled.
func (s *sentStanzas) key(st any) string {
	if s.out == nil {
		return ""
	}
	var base string
	switch v := st.(type) {
	case *xmpp.Message:
		base = "message " + v.To.String() + " " + v.ID
	case *xmpp.Presence:
		base = "presence " + v.To.String() + " " + v.ID
	default:
		return ""
	}
	if s.seq == nil {
		s.seq = map[string]int{}
	}
	n := s.seq[base]
	s.seq[base]++
	return base + " " + strconv.Itoa(n)
}

// reached reports whether a stanza of the current event went out before
// on a stream that is still up.
func (s *sentStanzas) reached(key string, up func(link uint64) bool) bool {
	link, ok := s.out[key]
	return key != "" && ok && up(link)
}

// wentOut notes that a stanza was written to stream link.
func (s *sentStanzas) wentOut(key string, link uint64) {
	if key != "" {
		s.out[key] = link
	}
}
