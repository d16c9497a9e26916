package matrix

import (
	"context"
	"database/sql"
	"errors"
	"slices"
	"sync"

	"github.com/rs/zerolog"
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

	mu         sync.Mutex
	membership *sql.Stmt // prepared by membershipStmt
}

// NewStateStore returns the state store in its own tables of db.
func NewStateStore(db *dbutil.Database, log dbutil.DatabaseLogger) *StateStore {
	return &StateStore{SQLStateStore: sqlstatestore.NewSQLStateStore(db.Child(sqlstatestore.VersionTableName, sqlstatestore.UpgradeTable, log), log, false)}
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

const getMembership = `SELECT membership FROM mx_user_profile WHERE room_id=$1 AND user_id=$2`

// GetMembership implements mautrix.StateStore as mautrix's does, with a
// prepared statement: a puppet asks it before every message it sends
// (IntentAPI.EnsureJoined).
func (s *StateStore) GetMembership(ctx context.Context, roomID id.RoomID, userID id.UserID) (event.Membership, error) {
	st := s.membershipStmt(ctx)
	if st == nil {
		return s.SQLStateStore.GetMembership(ctx, roomID, userID)
	}
	var m event.Membership
	err := st.QueryRowContext(ctx, roomID, userID).Scan(&m)
	if errors.Is(err, sql.ErrNoRows) {
		return event.MembershipLeave, nil
	}
	return m, err
}

// membershipStmt returns the prepared statement of GetMembership, or nil
// inside a transaction (which the statement is not of) or if preparing
// failed.
func (s *StateStore) membershipStmt(ctx context.Context) *sql.Stmt {
	if s.Execable(ctx) != &s.LoggingDB {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.membership == nil {
		s.membership, _ = s.RawDB.PrepareContext(context.WithoutCancel(ctx), getMembership)
	}
	return s.membership
}

// IsInRoom implements mautrix.StateStore (mautrix's calls its own
// GetMembership).
func (s *StateStore) IsInRoom(ctx context.Context, roomID id.RoomID, userID id.UserID) bool {
	return s.IsMembership(ctx, roomID, userID, event.MembershipJoin)
}

// IsInvited implements mautrix.StateStore.
func (s *StateStore) IsInvited(ctx context.Context, roomID id.RoomID, userID id.UserID) bool {
	return s.IsMembership(ctx, roomID, userID, event.MembershipJoin, event.MembershipInvite)
}

// IsMembership implements mautrix.StateStore.
func (s *StateStore) IsMembership(ctx context.Context, roomID id.RoomID, userID id.UserID, allowed ...event.Membership) bool {
	m, err := s.GetMembership(ctx, roomID, userID)
	if err != nil {
		zerolog.Ctx(ctx).Err(err).Msg("Failed to get membership")
		return false
	}
	return slices.Contains(allowed, m)
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
