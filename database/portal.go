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
	// DMUser and DMJID are the Matrix user and the bare JID of the XMPP
	// user of a direct chat; both are empty for a room.
	DMUser id.UserID
	DMJID  string
	// DMVia is the occupant JID (room@component/nick) a private chat's
	// Matrix user speaks from: the chat began as a private message to them
	// in a hosted room. Empty for other chats.
	DMVia string
	// DMPuppet is the puppet of the XMPP side of a private chat with an
	// occupant of a MUC hosted elsewhere (DMJID is then their occupant
	// JID); empty for the puppet of DMJID.
	DMPuppet id.UserID
	// RemoteJID is the bare JID of the MUC of a portal into a MUC hosted
	// elsewhere; empty for the other kinds.
	RemoteJID string
}

// Row returns the row itself: a portal of any kind embeds it.
func (p *Portal) Row() *Portal { return p }

// IsDirect reports whether the portal is a direct chat rather than a room.
func (p *Portal) IsDirect() bool { return p.DMJID != "" }

// IsRemote reports whether the portal is one into a MUC hosted elsewhere.
func (p *Portal) IsRemote() bool { return p.RemoteJID != "" }

// NewDirect returns the row of a direct chat in a Matrix room.
func NewDirect(roomID id.RoomID, user id.UserID, bare string) *Portal {
	return &Portal{RoomID: roomID, MUCLocal: roomID.String(), CreatedAt: time.Now(), DMUser: user, DMJID: bare}
}

// NewPrivate returns the row of a private chat: a direct chat that an XMPP
// user opened with a Matrix member of a hosted room, who speaks from the
// occupant JID via.
func NewPrivate(roomID id.RoomID, user id.UserID, bare, via string) *Portal {
	p := NewDirect(roomID, user, bare)
	p.DMVia = via
	return p
}

// NewRemote returns the row of a portal into the MUC room (a bare JID)
// hosted elsewhere, whose Matrix room has alias.
func NewRemote(roomID id.RoomID, alias id.RoomAlias, room string) *Portal {
	return &Portal{RoomID: roomID, Alias: alias, MUCLocal: roomID.String(), CreatedAt: time.Now(), RemoteJID: room}
}

func newPortal(_ *dbutil.QueryHelper[*Portal]) *Portal { return &Portal{} }

const (
	portalColumns       = `room_id, alias, muc_local, created_at, dm_user, dm_jid, dm_via, dm_puppet, remote_jid`
	getPortalByRoomID   = `SELECT ` + portalColumns + ` FROM portal WHERE room_id=$1`
	getPortalByMUCLocal = `SELECT ` + portalColumns + ` FROM portal WHERE muc_local=$1 AND dm_jid='' AND remote_jid=''`
	getAllPortals       = `SELECT ` + portalColumns + ` FROM portal WHERE dm_jid='' AND remote_jid=''`
	getRemotePortals    = `SELECT ` + portalColumns + ` FROM portal WHERE remote_jid<>'' ORDER BY remote_jid`
	getPortalByRemote   = `SELECT ` + portalColumns + ` FROM portal WHERE remote_jid=$1 AND remote_jid<>''`
	getDirect           = `SELECT ` + portalColumns + ` FROM portal WHERE dm_user=$1 AND dm_jid=$2 AND dm_via=$3 AND dm_jid<>''`
	getDirectByJID      = `SELECT ` + portalColumns + ` FROM portal WHERE dm_jid=$1 AND dm_jid<>''`
	getDirectByUser     = `SELECT ` + portalColumns + ` FROM portal WHERE dm_user=$1 AND dm_jid<>''`
	insertPortal        = `INSERT INTO portal (` + portalColumns + `) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`
	updatePortal        = `UPDATE portal SET alias=$2, muc_local=$3 WHERE room_id=$1`
	deletePortal        = `DELETE FROM portal WHERE room_id=$1`
)

// Scan implements dbutil.DataStruct.
func (p *Portal) Scan(row dbutil.Scannable) (*Portal, error) {
	var created int64
	err := row.Scan(&p.RoomID, &p.Alias, &p.MUCLocal, &created, &p.DMUser, &p.DMJID, &p.DMVia, &p.DMPuppet, &p.RemoteJID)
	if err != nil {
		return nil, err
	}
	p.CreatedAt = time.UnixMilli(created)
	return p, nil
}

func (p *Portal) sqlVariables() []any {
	return []any{p.RoomID, p.Alias, p.MUCLocal, p.CreatedAt.UnixMilli(), p.DMUser, p.DMJID, p.DMVia, p.DMPuppet, p.RemoteJID}
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

// GetAll returns every portal of a room the component hosts (not the
// direct chats, not the portals into MUCs hosted elsewhere).
func (pq *PortalQuery) GetAll(ctx context.Context) ([]*Portal, error) {
	return pq.QueryMany(ctx, getAllPortals)
}

// GetRemote returns every portal into a MUC hosted elsewhere.
func (pq *PortalQuery) GetRemote(ctx context.Context) ([]*Portal, error) {
	return pq.QueryMany(ctx, getRemotePortals)
}

// GetByRemoteJID returns the portal into the MUC hosted elsewhere with a
// bare JID, or nil if there is none.
func (pq *PortalQuery) GetByRemoteJID(ctx context.Context, room string) (*Portal, error) {
	return pq.QueryOne(ctx, getPortalByRemote, room)
}

// CountRemote returns how many portals into MUCs hosted elsewhere there are.
func (pq *PortalQuery) CountRemote(ctx context.Context) (n int, err error) {
	err = pq.GetDB().QueryRow(ctx, `SELECT COUNT(*) FROM portal WHERE remote_jid<>''`).Scan(&n)
	return n, err
}

// GetDirect returns the direct chat of a Matrix user with an XMPP user (a
// bare JID), or nil if there is none.
func (pq *PortalQuery) GetDirect(ctx context.Context, user id.UserID, bare string) (*Portal, error) {
	return pq.QueryOne(ctx, getDirect, user, bare, "")
}

// GetPrivate returns the private chat of a Matrix user, speaking from the
// occupant JID via, with an XMPP user, or nil if there is none.
func (pq *PortalQuery) GetPrivate(ctx context.Context, user id.UserID, bare, via string) (*Portal, error) {
	return pq.QueryOne(ctx, getDirect, user, bare, via)
}

// CountDirect returns how many direct chats there are.
func (pq *PortalQuery) CountDirect(ctx context.Context) (n int, err error) {
	err = pq.GetDB().QueryRow(ctx, `SELECT COUNT(*) FROM portal WHERE dm_jid<>''`).Scan(&n)
	return n, err
}

// GetDirectByUser returns every direct chat of a Matrix user.
func (pq *PortalQuery) GetDirectByUser(ctx context.Context, user id.UserID) ([]*Portal, error) {
	return pq.QueryMany(ctx, getDirectByUser, user)
}

// GetDirectByJID returns every direct chat of an XMPP user.
func (pq *PortalQuery) GetDirectByJID(ctx context.Context, bare string) ([]*Portal, error) {
	return pq.QueryMany(ctx, getDirectByJID, bare)
}

// MoveVia moves a Matrix user's private chats from one of their occupant
// JIDs to another (they were renamed in the room), and returns how many.
func (pq *PortalQuery) MoveVia(ctx context.Context, user id.UserID, from, to string) (int64, error) {
	res, err := pq.GetDB().Exec(ctx, `UPDATE portal SET dm_via=$3 WHERE dm_user=$1 AND dm_via=$2 AND dm_jid<>''`, user, from, to)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

// MovePeer moves the private chats with an occupant of a MUC hosted
// elsewhere from their old occupant JID to their new one (renamed).
func (pq *PortalQuery) MovePeer(ctx context.Context, from, to string) (int64, error) {
	res, err := pq.GetDB().Exec(ctx, `UPDATE portal SET dm_jid=$2 WHERE dm_jid=$1 AND dm_puppet<>''`, from, to)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
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
