package matrix

import (
	"context"

	"go.mau.fi/util/dbutil"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
	"maunium.net/go/mautrix/sqlstatestore"
)

// StateStore is mautrix's SQL state store, except that it keeps no row for
// a user who has left a room: no row already means "not a member", and the
// bridge keeps no more about people than it needs (a forgotten or departed
// user's ID must not linger in the membership cache).
type StateStore struct {
	*sqlstatestore.SQLStateStore
}

// NewStateStore returns the state store in its own tables of db.
func NewStateStore(db *dbutil.Database, log dbutil.DatabaseLogger) *StateStore {
	return &StateStore{sqlstatestore.NewSQLStateStore(db.Child(sqlstatestore.VersionTableName, sqlstatestore.UpgradeTable, log), log, false)}
}

// Upgrade brings the state store's tables to the latest schema, with an
// index of the bridge's own on members by user (RoomsOf): mautrix's
// indexes are by room. It is made again if an upgrade of mautrix's tables
// dropped it.
func (s *StateStore) Upgrade(ctx context.Context) error {
	if err := s.SQLStateStore.Upgrade(ctx); err != nil {
		return err
	}
	_, err := s.Exec(ctx, `CREATE INDEX IF NOT EXISTS mxpp_user_profile_user_idx ON mx_user_profile (user_id)`)
	return err
}

// RoomsOf returns the rooms a user is joined to, as the homeserver told
// the bridge.
func (s *StateStore) RoomsOf(ctx context.Context, userID id.UserID) ([]id.RoomID, error) {
	rows, err := s.Query(ctx, `SELECT room_id FROM mx_user_profile WHERE user_id=$1 AND membership='join'`, userID)
	return dbutil.NewRowIterWithError(rows, dbutil.ScanSingleColumn[id.RoomID], err).AsList()
}

// SetMembership implements mautrix.StateStore.
func (s *StateStore) SetMembership(ctx context.Context, roomID id.RoomID, userID id.UserID, membership event.Membership) error {
	if membership == event.MembershipLeave {
		return s.forgetMember(ctx, roomID, userID)
	}
	return s.SQLStateStore.SetMembership(ctx, roomID, userID, membership)
}

// SetMember implements mautrix.StateStore.
func (s *StateStore) SetMember(ctx context.Context, roomID id.RoomID, userID id.UserID, member *event.MemberEventContent) error {
	if member.Membership == event.MembershipLeave {
		return s.forgetMember(ctx, roomID, userID)
	}
	return s.SQLStateStore.SetMember(ctx, roomID, userID, member)
}

// ReplaceCachedMembers implements mautrix.StateStore.
func (s *StateStore) ReplaceCachedMembers(ctx context.Context, roomID id.RoomID, evts []*event.Event, onlyMemberships ...event.Membership) error {
	kept := make([]*event.Event, 0, len(evts))
	for _, evt := range evts {
		if m, ok := evt.Content.Parsed.(*event.MemberEventContent); !ok || m.Membership != event.MembershipLeave {
			kept = append(kept, evt)
		}
	}
	return s.SQLStateStore.ReplaceCachedMembers(ctx, roomID, kept, onlyMemberships...)
}

func (s *StateStore) forgetMember(ctx context.Context, roomID id.RoomID, userID id.UserID) error {
	_, err := s.Exec(ctx, `DELETE FROM mx_user_profile WHERE room_id=$1 AND user_id=$2`, roomID, userID)
	return err
}

// ForgetRoom drops everything cached about a room the bridge left for good:
// members and state (whose power levels can name puppets).
func (s *StateStore) ForgetRoom(ctx context.Context, roomID id.RoomID) error {
	for _, q := range []string{`DELETE FROM mx_user_profile WHERE room_id=$1`, `DELETE FROM mx_room_state WHERE room_id=$1`} {
		if _, err := s.Exec(ctx, q, roomID); err != nil {
			return err
		}
	}
	return nil
}
