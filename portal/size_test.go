package portal

import (
	"context"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
	"mellium.im/xmpp/jid"

	"github.com/mxpp/mxpp/database"
	"github.com/mxpp/mxpp/matrix"
	"github.com/mxpp/mxpp/xmpp"
)

// sizeHS serves every room with a few Matrix members and power levels.
type sizeHS struct{ fakeMatrix }

func (sizeHS) RoomInfo(_ context.Context, room id.RoomID) (*matrix.RoomInfo, error) {
	info := &matrix.RoomInfo{RoomID: room, Name: "Room " + string(room), JoinRule: event.JoinRulePublic,
		Members:     map[id.UserID]matrix.Member{},
		PowerLevels: &event.PowerLevelsEventContent{Users: map[id.UserID]int{}}}
	for i := range 3 {
		u := id.UserID(fmt.Sprintf("@user%d.%s:hs.test", i, room[1:]))
		info.Members[u] = matrix.Member{Displayname: fmt.Sprintf("User %d", i)}
		info.PowerLevels.Users[u] = 50
	}
	return info, nil
}

func (sizeHS) IsBridgeUser(id.UserID) bool { return false }

func (sizeHS) InDirectory(context.Context, id.RoomID) (bool, error) { return true, nil }

// BenchmarkLoadedPortal reports the heap a loaded portal holds: the room's
// state (three Matrix members), its roster, and five occupants with one
// session each, read from the database. A bridge at size holds this for
// each of thousands of rooms; cmd/mxpp-bench measures the whole process.
func BenchmarkLoadedPortal(b *testing.B) {
	const rooms, occupants = 1000, 5
	ctx := context.Background()
	db := openTestDB(b)
	var err error
	deps := &Deps{Matrix: sizeHS{}, DB: db, Scheme: xmpp.Scheme{Domain: jid.MustParse("matrix.xmpp.test")}, Log: zerolog.Nop()}
	rows := make([]*database.Portal, rooms)
	for i := range rows {
		rows[i] = &database.Portal{RoomID: id.RoomID(fmt.Sprintf("!room%d:hs.test", i)), Alias: id.RoomAlias(fmt.Sprintf("#room%d:hs.test", i)),
			MUCLocal: fmt.Sprintf("#room%d#hs.test", i)}
		if err = db.Portal.Insert(ctx, rows[i]); err != nil {
			b.Fatal(err)
		}
		for j := range occupants {
			user := fmt.Sprintf("user%d.%d@xmpp.test", j, i)
			err = db.Puppet.Upsert(ctx, &database.Puppet{JID: user, MXID: sizeHS{}.PuppetID(user), Registered: true, CreatedAt: time.Now()})
			if err != nil {
				b.Fatal(err)
			}
			err = db.Occupant.Upsert(ctx, &database.Occupant{RoomID: rows[i].RoomID, FullJID: user + "/phone", UserJID: user,
				Nick: fmt.Sprintf("Occupant %d", j), JoinedAt: time.Now()})
			if err != nil {
				b.Fatal(err)
			}
		}
	}
	var before, after runtime.MemStats
	for b.Loop() {
		portals := make([]*Portal, rooms)
		runtime.GC()
		runtime.ReadMemStats(&before)
		for i, row := range rows {
			if portals[i], err = New(row, deps); err != nil {
				b.Fatal(err)
			}
			if err = portals[i].load(ctx); err != nil {
				b.Fatal(err)
			}
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/rooms, "B/portal")
		keepPortals = portals
	}
}

var keepPortals []*Portal
