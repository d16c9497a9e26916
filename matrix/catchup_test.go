package matrix

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"maunium.net/go/mautrix/id"
)

// TestCatchUp: after a homeserver outage, the recent messages of each
// bridged room since the margin are handed on, oldest first, except the
// bridge's own; older ones are not.
func TestCatchUp(t *testing.T) {
	now := time.Now()
	c, h, _ := keyWaitConnector(t, func(w http.ResponseWriter, r *http.Request) {
		if !strings.Contains(r.URL.Path, "/messages") {
			w.WriteHeader(http.StatusNotFound)
			return
		}
		evt := func(id, sender string, age time.Duration) string {
			return fmt.Sprintf(`{"type":"m.room.message","event_id":%q,"sender":%q,"origin_server_ts":%d,"content":{"msgtype":"m.text","body":"x"}}`,
				id, sender, now.Add(-age).UnixMilli())
		}
		// Newest first, as dir=b answers.
		_, _ = fmt.Fprintf(w, `{"chunk":[%s,%s,%s,%s],"start":"s","end":"e"}`,
			evt("$new", "@mary:hs.test", time.Second), evt("$puppet", "@_xmpp_alice=40xmpp.test:hs.test", 2*time.Second),
			evt("$lost", "@mary:hs.test", 3*time.Second), evt("$old", "@mary:hs.test", time.Hour))
	})
	c.SetCatchUpRooms(func() []id.RoomID { return []id.RoomID{"!a:hs.test"} })
	c.catchUp(context.Background(), now.Add(-time.Minute))
	if got, want := h.ids(), []id.EventID{"$lost", "$new"}; !slices.Equal(got, want) {
		t.Errorf("caught up %v; want %v", got, want)
	}
}
