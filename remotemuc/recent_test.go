package remotemuc

import "testing"

// TestRecent: the room sends every message to each of our occupants; a
// key that comes again to another occupant is a copy, one that comes
// again to the same occupant is a new message that reuses the key.
func TestRecent(t *testing.T) {
	r := newRecent(3)
	steps := []struct {
		key, to string
		copied  bool
	}{
		{"k1", "a", false}, {"k1", "b", true}, {"k1", "c", true},
		{"k1", "a", false}, // reused: a new message, whose copies count afresh
		{"k1", "b", true},
		{"k2", "b", false}, {"k3", "a", false}, {"k4", "a", false}, // k1 is pushed out
		{"k1", "b", false},
	}
	for i, s := range steps {
		if got := r.note(s.key, s.to); got != s.copied {
			t.Errorf("step %d: note(%s, %s) = %v; want %v", i, s.key, s.to, got, s.copied)
		}
	}
}
