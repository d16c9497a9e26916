package database

import (
	"context"
	"time"

	"go.mau.fi/util/dbutil"
	"maunium.net/go/mautrix/id"
)

// Portal is a Matrix room that XMPP users can reach as a MUC.
type Portal struct {
	RoomID id.RoomID
	// Alias is the room's canonical alias as Matrix spells it.
	Alias id.RoomAlias
	// MUCLocal is the case-folded localpart of the room's MUC JID.
	MUCLocal  string
	CreatedAt time.Time
}

func newPortal(_ *dbutil.QueryHelper[*Portal]) *Portal { return &Portal{} }

const (
	portalColumns       = `room_id, alias, muc_local, created_at`
	getPortalByRoomID   = `SELECT ` + portalColumns + ` FROM portal WHERE room_id=$1`
	getPortalByMUCLocal = `SELECT ` + portalColumns + ` FROM portal WHERE muc_local=$1`
	getAllPortals       = `SELECT ` + portalColumns + ` FROM portal`
	insertPortal        = `INSERT INTO portal (` + portalColumns + `) VALUES ($1, $2, $3, $4)`
	updatePortal        = `UPDATE portal SET alias=$2, muc_local=$3 WHERE room_id=$1`
	deletePortal        = `DELETE FROM portal WHERE room_id=$1`
)

// Scan implements dbutil.DataStruct.
func (p *Portal) Scan(row dbutil.Scannable) (*Portal, error) {
	var created int64
	err := row.Scan(&p.RoomID, &p.Alias, &p.MUCLocal, &created)
	if err != nil {
		return nil, err
	}
	p.CreatedAt = time.UnixMilli(created)
	return p, nil
}

func (p *Portal) sqlVariables() []any {
	return []any{p.RoomID, p.Alias, p.MUCLocal, p.CreatedAt.UnixMilli()}
}

// PortalQuery reads and writes the portal table.
type PortalQuery struct {
	*dbutil.QueryHelper[*Portal]
}

// GetByRoomID returns the portal of a Matrix room, or nil if there is none.
func (pq *PortalQuery) GetByRoomID(ctx context.Context, roomID id.RoomID) (*Portal, error) {
	return pq.QueryOne(ctx, getPortalByRoomID, roomID)
}

// GetByMUCLocal returns the portal whose MUC has the case-folded localpart,
// or nil if there is none.
func (pq *PortalQuery) GetByMUCLocal(ctx context.Context, local string) (*Portal, error) {
	return pq.QueryOne(ctx, getPortalByMUCLocal, local)
}

// GetAll returns every portal.
func (pq *PortalQuery) GetAll(ctx context.Context) ([]*Portal, error) {
	return pq.QueryMany(ctx, getAllPortals)
}

// Insert adds a portal.
func (pq *PortalQuery) Insert(ctx context.Context, p *Portal) error {
	return pq.Exec(ctx, insertPortal, p.sqlVariables()...)
}

// Update stores a portal's changed alias and MUC localpart.
func (pq *PortalQuery) Update(ctx context.Context, p *Portal) error {
	return pq.Exec(ctx, updatePortal, p.RoomID, p.Alias, p.MUCLocal)
}

// Delete removes a portal with its occupants and message map.
func (pq *PortalQuery) Delete(ctx context.Context, roomID id.RoomID) error {
	return pq.Exec(ctx, deletePortal, roomID)
}
