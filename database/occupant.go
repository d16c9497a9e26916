package database

import (
	"context"
	"time"

	"go.mau.fi/util/dbutil"
	"maunium.net/go/mautrix/id"
)

// Occupant is one session (full JID) of an XMPP user joined to a portal.
type Occupant struct {
	RoomID id.RoomID
	// FullJID is the joined session; UserJID its bare JID, the puppet's key.
	FullJID  string
	UserJID  string
	Nick     string
	JoinedAt time.Time
}

func newOccupant(_ *dbutil.QueryHelper[*Occupant]) *Occupant { return &Occupant{} }

const (
	occupantColumns     = `room_id, full_jid, user_jid, nick, joined_at`
	getOccupantsByRoom  = `SELECT ` + occupantColumns + ` FROM occupant WHERE room_id=$1 ORDER BY joined_at, full_jid`
	getOccupantsByUser  = `SELECT ` + occupantColumns + ` FROM occupant WHERE user_jid=$1`
	upsertOccupant      = `INSERT INTO occupant (` + occupantColumns + `) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (room_id, full_jid) DO UPDATE SET nick=excluded.nick`
	deleteOccupant      = `DELETE FROM occupant WHERE room_id=$1 AND full_jid=$2`
	deleteUserOccupants = `DELETE FROM occupant WHERE room_id=$1 AND user_jid=$2`
	countOccupants      = `SELECT COUNT(*) FROM occupant`
	getOccupiedRooms    = `SELECT DISTINCT room_id FROM occupant`
)

// Scan implements dbutil.DataStruct.
func (o *Occupant) Scan(row dbutil.Scannable) (*Occupant, error) {
	var joined int64
	err := row.Scan(&o.RoomID, &o.FullJID, &o.UserJID, &o.Nick, &joined)
	if err != nil {
		return nil, err
	}
	o.JoinedAt = time.UnixMilli(joined)
	return o, nil
}

func (o *Occupant) sqlVariables() []any {
	return []any{o.RoomID, o.FullJID, o.UserJID, o.Nick, o.JoinedAt.UnixMilli()}
}

// OccupantQuery reads and writes the occupant table.
type OccupantQuery struct {
	*dbutil.QueryHelper[*Occupant]
}

// GetByRoom returns a portal's occupant sessions in joining order.
func (oq *OccupantQuery) GetByRoom(ctx context.Context, roomID id.RoomID) ([]*Occupant, error) {
	return oq.QueryMany(ctx, getOccupantsByRoom, roomID)
}

// Rooms returns the portals that have occupant sessions, in one query.
func (oq *OccupantQuery) Rooms(ctx context.Context) ([]id.RoomID, error) {
	rows, err := oq.GetDB().Query(ctx, getOccupiedRooms)
	return dbutil.NewRowIterWithError(rows, dbutil.ScanSingleColumn[id.RoomID], err).AsList()
}

// GetByUser returns every session of a bare JID in every portal.
func (oq *OccupantQuery) GetByUser(ctx context.Context, bare string) ([]*Occupant, error) {
	return oq.QueryMany(ctx, getOccupantsByUser, bare)
}

// Upsert adds a session or changes its nick.
func (oq *OccupantQuery) Upsert(ctx context.Context, o *Occupant) error {
	return oq.Exec(ctx, upsertOccupant, o.sqlVariables()...)
}

// Delete removes one session.
func (oq *OccupantQuery) Delete(ctx context.Context, roomID id.RoomID, fullJID string) error {
	return oq.Exec(ctx, deleteOccupant, roomID, fullJID)
}

// DeleteUser removes every session of a bare JID in a portal.
func (oq *OccupantQuery) DeleteUser(ctx context.Context, roomID id.RoomID, bare string) error {
	return oq.Exec(ctx, deleteUserOccupants, roomID, bare)
}

// Count returns the number of occupant sessions in all portals.
func (oq *OccupantQuery) Count(ctx context.Context) (n int, err error) {
	err = oq.GetDB().QueryRow(ctx, countOccupants).Scan(&n)
	return
}
