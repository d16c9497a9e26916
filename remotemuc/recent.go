package remotemuc

import "slices"

// recent remembers the last keys of messages from a MUC and which of our
// occupants each came to. The room sends every message once to each of our
// occupants: a key that comes again to another occupant is a copy; one
// that comes again to the same occupant is a new message that reuses it
// (a client's reused id), whose copies are then counted afresh.
type recent struct {
	to   map[string][]string
	ring []string
	next int
}

func newRecent(n int) *recent {
	return &recent{to: make(map[string][]string, n), ring: make([]string, n)}
}

// note records that key came to an occupant, and reports whether that is
// a copy of a message that came before.
func (r *recent) note(key, to string) (copied bool) {
	if seen, ok := r.to[key]; ok {
		if !slices.Contains(seen, to) {
			r.to[key] = append(seen, to)
			return true
		}
		r.to[key] = []string{to}
		return false
	}
	r.add(key, to)
	return false
}

// has reports whether a key was noted lately.
func (r *recent) has(key string) bool { _, ok := r.to[key]; return ok }

// add records a key as new, for an occupant ("" for none: a message the
// archive brought).
func (r *recent) add(key, to string) {
	if _, ok := r.to[key]; !ok {
		delete(r.to, r.ring[r.next])
		r.ring[r.next] = key
		r.next = (r.next + 1) % len(r.ring)
	}
	r.to[key] = []string{to}
}
