package matrix

import (
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// levelTables lets rooms whose power levels give the same levels to the
// same event types share one table. Most rooms of a deployment are made
// by the same clients and keep their defaults, so a bridge in thousands
// of rooms would otherwise hold thousands of copies of a handful of
// tables. A shared table is never written to: nothing in the bridge
// changes the event levels of a room's cached power levels in place (a
// power levels event replaces them whole).
type levelTables struct {
	mu     sync.Mutex
	tables map[string]map[string]int
}

// maxLevelTables bounds how many different tables are kept for sharing,
// so that rooms made to differ cannot grow it without end; a table past
// the bound is used unshared, as before.
const maxLevelTables = 1024

// share returns a table equal to events, one already shared if there is.
func (t *levelTables) share(events map[string]int) map[string]int {
	if len(events) == 0 {
		return events
	}
	key := levelsKey(events)
	t.mu.Lock()
	defer t.mu.Unlock()
	if shared, ok := t.tables[key]; ok {
		return shared
	}
	if t.tables == nil {
		t.tables = map[string]map[string]int{}
	}
	if len(t.tables) < maxLevelTables {
		t.tables[key] = events
	}
	return events
}

// levelsKey spells a table out in a canonical form.
func levelsKey(events map[string]int) string {
	var b strings.Builder
	for _, k := range slices.Sorted(maps.Keys(events)) {
		b.WriteString(k)
		b.WriteByte(0)
		b.WriteString(strconv.Itoa(events[k]))
		b.WriteByte(0)
	}
	return b.String()
}
