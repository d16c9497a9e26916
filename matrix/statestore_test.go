package matrix

import (
	"context"
	"database/sql"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"go.mau.fi/util/dbutil"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
	_ "modernc.org/sqlite"
)

// testStateStore returns a state store in a temporary SQLite file.
func testStateStore(t *testing.T) (*StateStore, *dbutil.Database) {
	t.Helper()
	raw, err := sql.Open("sqlite", "file:"+filepath.Join(t.TempDir(), "s.db"))
	if err != nil {
		t.Fatal(err)
	}
	db, err := dbutil.NewWithDB(raw, "sqlite")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	s := NewStateStore(db, dbutil.NoopLogger)
	if err = s.Upgrade(context.Background()); err != nil {
		t.Fatal(err)
	}
	return s, db
}

func TestStateStoreKeepsNoLeaves(t *testing.T) {
	ctx := context.Background()
	s, db := testStateStore(t)
	var err error
	room, alice, bob := id.RoomID("!r:hs"), id.UserID("@alice:hs"), id.UserID("@bob:hs")
	rows := func() int {
		var n int
		if err := db.QueryRow(ctx, `SELECT COUNT(*) FROM mx_user_profile`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	_ = s.SetMember(ctx, room, alice, &event.MemberEventContent{Membership: event.MembershipJoin, Displayname: "Alice"})
	_ = s.SetMembership(ctx, room, bob, event.MembershipJoin)
	if !s.IsInRoom(ctx, room, alice) || !s.IsInRoom(ctx, room, bob) || rows() != 2 {
		t.Fatalf("joins not stored: %d rows", rows())
	}
	_ = s.SetMember(ctx, room, alice, &event.MemberEventContent{Membership: event.MembershipLeave})
	_ = s.SetMembership(ctx, room, bob, event.MembershipLeave)
	if s.IsInRoom(ctx, room, alice) || s.IsInRoom(ctx, room, bob) || rows() != 0 {
		t.Errorf("leaves kept: %d rows", rows())
	}
	_ = s.SetMembership(ctx, room, bob, event.MembershipBan)
	if m, _ := s.GetMembership(ctx, room, bob); m != event.MembershipBan {
		t.Errorf("ban not stored: %q", m)
	}

	member := func(user id.UserID, m event.Membership) *event.Event {
		key := user.String()
		evt := &event.Event{Type: event.StateMember, StateKey: &key, RoomID: room}
		evt.Content.Parsed = &event.MemberEventContent{Membership: m}
		return evt
	}
	err = s.ReplaceCachedMembers(ctx, room, []*event.Event{member(alice, event.MembershipJoin), member(bob, event.MembershipLeave)})
	if err != nil {
		t.Fatal(err)
	}
	if !s.IsInRoom(ctx, room, alice) || rows() != 1 {
		t.Errorf("after ReplaceCachedMembers: %d rows, want only Alice's join", rows())
	}
	// Memberships read by the prepared statement, and inside a
	// transaction without it.
	carol := id.UserID("@carol:hs")
	_ = s.SetMembership(ctx, room, carol, event.MembershipInvite)
	if !s.IsInvited(ctx, room, carol) || s.IsInRoom(ctx, room, carol) || !s.IsInvited(ctx, room, alice) || s.IsInvited(ctx, room, bob) {
		t.Error("invitations read wrong")
	}
	_ = s.DoTxn(ctx, nil, func(ctx context.Context) error {
		if !s.IsInRoom(ctx, room, alice) || s.IsInRoom(ctx, room, carol) {
			t.Error("memberships read wrong inside a transaction")
		}
		return nil
	})
}

// TestStateStoreForgetRoom: a room the bridge left for good leaves nothing
// behind, while other rooms keep their state.
func TestStateStoreForgetRoom(t *testing.T) {
	ctx := context.Background()
	s, db := testStateStore(t)
	room, other, puppet := id.RoomID("!dm:hs"), id.RoomID("!r:hs"), id.UserID("@_xmpp_a=40x:hs")
	for _, r := range []id.RoomID{room, other} {
		_ = s.SetMembership(ctx, r, puppet, event.MembershipJoin)
		if err := s.SetPowerLevels(ctx, r, &event.PowerLevelsEventContent{Users: map[id.UserID]int{puppet: 100}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.ForgetRoom(ctx, room); err != nil {
		t.Fatal(err)
	}
	count := func(r id.RoomID) (n int) {
		err := db.QueryRow(ctx, `SELECT (SELECT COUNT(*) FROM mx_user_profile WHERE room_id=$1) +
			(SELECT COUNT(*) FROM mx_room_state WHERE room_id=$1)`, r).Scan(&n)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := count(room); n != 0 {
		t.Errorf("%d rows of the forgotten room remain", n)
	}
	if n := count(other); n != 2 {
		t.Errorf("the other room has %d rows; want 2", n)
	}
}

// TestRoomsOf: the rooms a user is joined to, found through the bridge's
// index by user (checked to be used), not the rooms they were invited to
// or left.
func TestRoomsOf(t *testing.T) {
	ctx := context.Background()
	s, db := testStateStore(t)
	alice := id.UserID("@alice:hs")
	_ = s.SetMembership(ctx, "!a:hs", alice, event.MembershipJoin)
	_ = s.SetMembership(ctx, "!b:hs", alice, event.MembershipJoin)
	_ = s.SetMembership(ctx, "!c:hs", alice, event.MembershipInvite)
	_ = s.SetMembership(ctx, "!d:hs", alice, event.MembershipJoin)
	_ = s.SetMembership(ctx, "!d:hs", alice, event.MembershipLeave)
	_ = s.SetMembership(ctx, "!a:hs", "@bob:hs", event.MembershipJoin)
	rooms, err := s.RoomsOf(ctx, alice)
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(rooms)
	if !slices.Equal(rooms, []id.RoomID{"!a:hs", "!b:hs"}) {
		t.Errorf("RoomsOf = %v; want the two rooms she joined", rooms)
	}
	var plan string
	var a, b, c any
	if err = db.QueryRow(ctx, `EXPLAIN QUERY PLAN SELECT room_id FROM mx_user_profile WHERE user_id=$1 AND membership='join'`, alice).Scan(&a, &b, &c, &plan); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(plan, "mxpp_user_profile_user_idx") {
		t.Errorf("RoomsOf's query plan: %q; want the index by user", plan)
	}
}
