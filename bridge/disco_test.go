package bridge

import (
	"fmt"
	"testing"

	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"
)

func TestPageOf(t *testing.T) {
	var rooms []roomListing
	for i := range 25 {
		rooms = append(rooms, roomListing{jid: jid.MustParse(fmt.Sprintf("#r%02d#hs@c", i))})
	}
	key := func(i int) *string { s := rooms[i].jid.String(); return &s }
	n := func(i int) *int { return &i }
	empty := ""
	for _, tc := range []struct {
		name        string
		req         *rsmRequest
		first, size int
		err         stanza.Condition
	}{
		{"no request, short list", nil, 0, 25, ""},
		{"first page", &rsmRequest{Max: n(10)}, 0, 10, ""},
		{"after", &rsmRequest{Max: n(10), After: key(9)}, 10, 10, ""},
		{"last partial page", &rsmRequest{Max: n(10), After: key(19)}, 20, 5, ""},
		{"after the last", &rsmRequest{Max: n(10), After: key(24)}, 25, 0, ""},
		{"last page by empty before", &rsmRequest{Max: n(10), Before: &empty}, 15, 10, ""},
		{"before", &rsmRequest{Max: n(10), Before: key(5)}, 0, 5, ""},
		{"index", &rsmRequest{Max: n(3), Index: n(7)}, 7, 3, ""},
		{"count only", &rsmRequest{Max: n(0)}, 0, 0, ""},
		{"unknown after", &rsmRequest{Max: n(3), After: &empty}, 0, 0, stanza.ItemNotFound},
		{"index out of range", &rsmRequest{Index: n(99)}, 0, 0, stanza.ItemNotFound},
		{"negative max", &rsmRequest{Max: n(-1)}, 0, 0, stanza.BadRequest},
	} {
		page, set, serr := pageOf(rooms, tc.req)
		if tc.err != "" {
			if serr == nil || serr.Condition != tc.err {
				t.Errorf("%s: error %v; want %s", tc.name, serr, tc.err)
			}
			continue
		}
		if serr != nil || len(page) != tc.size || (tc.size > 0 && !page[0].jid.Equal(rooms[tc.first].jid)) {
			t.Errorf("%s: page of %d from %v, %v; want %d from %d", tc.name, len(page), page, serr, tc.size, tc.first)
			continue
		}
		if tc.req != nil && (set == nil || *set.Count != 25) {
			t.Errorf("%s: set %+v; want count 25", tc.name, set)
		}
		if tc.req != nil && tc.size > 0 && (set.First.ID != page[0].jid.String() || *set.First.Index != uint64(tc.first) || set.Last != page[len(page)-1].jid.String()) {
			t.Errorf("%s: set %+v does not describe the page", tc.name, set)
		}
	}
	var many []roomListing
	for i := range maxItemsUnpaged + 10 {
		many = append(many, roomListing{jid: jid.MustParse(fmt.Sprintf("#r%04d#hs@c", i))})
	}
	if page, set, _ := pageOf(many, nil); len(page) != maxItemsUnpaged || set == nil {
		t.Errorf("a long list without RSM gave %d items, set %v; want a first page with RSM", len(page), set)
	}
}
