package database

import (
	"context"
	"time"

	"go.mau.fi/util/dbutil"
	"maunium.net/go/mautrix/id"
)

// RemoteRoom is what the bridge keeps of a MUC hosted elsewhere beyond its
// portal row.
type RemoteRoom struct {
	RoomID id.RoomID
	// Password is what the room asks for to enter; "" for none. It is
	// given with the join command and never leaves the database.
	Password string
	// LastStanzaID and LastTime are the room's stanza-id and the time of
	// the newest message bridged from it: where catching up starts.
	LastStanzaID string
	LastTime     time.Time
}

func newRemoteRoom(_ *dbutil.QueryHelper[*RemoteRoom]) *RemoteRoom { return &RemoteRoom{} }

const (
	remoteRoomColumns  = `room_id, password, last_stanza_id, last_ts`
	getRemoteRoom      = `SELECT ` + remoteRoomColumns + ` FROM remote_room WHERE room_id=$1`
	upsertRemoteRoom   = `INSERT INTO remote_room (room_id, password) VALUES ($1, $2) ON CONFLICT (room_id) DO UPDATE SET password=excluded.password`
	setRemoteRoomPoint = `UPDATE remote_room SET last_stanza_id=$2, last_ts=$3 WHERE room_id=$1`
)

// Scan implements dbutil.DataStruct.
func (r *RemoteRoom) Scan(row dbutil.Scannable) (*RemoteRoom, error) {
	var ts int64
	if err := row.Scan(&r.RoomID, &r.Password, &r.LastStanzaID, &ts); err != nil {
		return nil, err
	}
	if ts > 0 {
		r.LastTime = time.UnixMilli(ts)
	}
	return r, nil
}

// RemoteRoomQuery reads and writes the remote_room table.
type RemoteRoomQuery struct {
	*dbutil.QueryHelper[*RemoteRoom]
}

// Get returns what is kept of a room; a room without a row gets the zero
// value.
func (q *RemoteRoomQuery) Get(ctx context.Context, roomID id.RoomID) (*RemoteRoom, error) {
	r, err := q.QueryOne(ctx, getRemoteRoom, roomID)
	if err == nil && r == nil {
		r = &RemoteRoom{RoomID: roomID}
	}
	return r, err
}

// SetPassword stores the password of a room, "" for none.
func (q *RemoteRoomQuery) SetPassword(ctx context.Context, roomID id.RoomID, password string) error {
	return q.Exec(ctx, upsertRemoteRoom, roomID, password)
}

// SetLast notes the newest message bridged from a room.
func (q *RemoteRoomQuery) SetLast(ctx context.Context, roomID id.RoomID, stanzaID string, t time.Time) error {
	return q.Exec(ctx, setRemoteRoomPoint, roomID, stanzaID, t.UnixMilli())
}

// RemoteOccupant is a Matrix user's occupant of a MUC hosted elsewhere.
type RemoteOccupant struct {
	RoomID id.RoomID
	UserID id.UserID
	// Nick is the nick the room knew the user by last.
	Nick string
	// Active is false once the room removed or refused the user for
	// good: the bridge does not rejoin until the user joins again.
	Active bool
}

func newRemoteOccupant(_ *dbutil.QueryHelper[*RemoteOccupant]) *RemoteOccupant {
	return &RemoteOccupant{}
}

const (
	remoteOccupantColumns = `room_id, user_id, nick, active`
	getRemoteOccupants    = `SELECT ` + remoteOccupantColumns + ` FROM remote_occupant WHERE room_id=$1 ORDER BY user_id`
	upsertRemoteOccupant  = `INSERT INTO remote_occupant (` + remoteOccupantColumns + `) VALUES ($1, $2, $3, $4)
		ON CONFLICT (room_id, user_id) DO UPDATE SET nick=excluded.nick, active=excluded.active`
	deleteRemoteOccupant  = `DELETE FROM remote_occupant WHERE room_id=$1 AND user_id=$2`
	deleteRemoteOccupants = `DELETE FROM remote_occupant WHERE user_id=$1`
	countRemoteOccupants  = `SELECT COUNT(*) FROM remote_occupant WHERE active`
)

// Scan implements dbutil.DataStruct.
func (o *RemoteOccupant) Scan(row dbutil.Scannable) (*RemoteOccupant, error) {
	return dbutil.ValueOrErr(o, row.Scan(&o.RoomID, &o.UserID, &o.Nick, &o.Active))
}

// RemoteOccupantQuery reads and writes the remote_occupant table.
type RemoteOccupantQuery struct {
	*dbutil.QueryHelper[*RemoteOccupant]
}

// GetByRoom returns the Matrix users' occupants of a room.
func (q *RemoteOccupantQuery) GetByRoom(ctx context.Context, roomID id.RoomID) ([]*RemoteOccupant, error) {
	return q.QueryMany(ctx, getRemoteOccupants, roomID)
}

// Upsert stores an occupant's nick and whether it is to be in the room.
func (q *RemoteOccupantQuery) Upsert(ctx context.Context, o *RemoteOccupant) error {
	return q.Exec(ctx, upsertRemoteOccupant, o.RoomID, o.UserID, o.Nick, o.Active)
}

// Delete forgets a Matrix user's occupant of a room.
func (q *RemoteOccupantQuery) Delete(ctx context.Context, roomID id.RoomID, userID id.UserID) error {
	return q.Exec(ctx, deleteRemoteOccupant, roomID, userID)
}

// DeleteUser forgets a Matrix user's occupants of every room.
func (q *RemoteOccupantQuery) DeleteUser(ctx context.Context, userID id.UserID) error {
	return q.Exec(ctx, deleteRemoteOccupants, userID)
}

// CountActive returns how many occupants of MUCs hosted elsewhere the
// Matrix users have.
func (q *RemoteOccupantQuery) CountActive(ctx context.Context) (n int, err error) {
	err = q.GetDB().QueryRow(ctx, countRemoteOccupants).Scan(&n)
	return n, err
}

// RoomPuppet is the puppet of an occupant known only within one MUC hosted
// elsewhere.
type RoomPuppet struct {
	RoomID id.RoomID
	// Token names the occupant in the room (xmpp.OccupantToken).
	Token string
	MXID  id.UserID
	// Nick is the occupant's nick now.
	Nick string
}

func newRoomPuppet(_ *dbutil.QueryHelper[*RoomPuppet]) *RoomPuppet { return &RoomPuppet{} }

const (
	roomPuppetColumns = `room_id, token, mxid, nick`
	getRoomPuppets    = `SELECT ` + roomPuppetColumns + ` FROM room_puppet WHERE room_id=$1`
	upsertRoomPuppet  = `INSERT INTO room_puppet (` + roomPuppetColumns + `) VALUES ($1, $2, $3, $4)
		ON CONFLICT (room_id, token) DO UPDATE SET mxid=excluded.mxid, nick=excluded.nick`
	deleteRoomPuppet = `DELETE FROM room_puppet WHERE room_id=$1 AND token=$2`
)

// Scan implements dbutil.DataStruct.
func (p *RoomPuppet) Scan(row dbutil.Scannable) (*RoomPuppet, error) {
	return dbutil.ValueOrErr(p, row.Scan(&p.RoomID, &p.Token, &p.MXID, &p.Nick))
}

// RoomPuppetQuery reads and writes the room_puppet table.
type RoomPuppetQuery struct {
	*dbutil.QueryHelper[*RoomPuppet]
}

// GetByRoom returns the room puppets of a room.
func (q *RoomPuppetQuery) GetByRoom(ctx context.Context, roomID id.RoomID) ([]*RoomPuppet, error) {
	return q.QueryMany(ctx, getRoomPuppets, roomID)
}

// Upsert stores a room puppet and its nick.
func (q *RoomPuppetQuery) Upsert(ctx context.Context, p *RoomPuppet) error {
	return q.Exec(ctx, upsertRoomPuppet, p.RoomID, p.Token, p.MXID, p.Nick)
}

// Delete forgets a room puppet.
func (q *RoomPuppetQuery) Delete(ctx context.Context, roomID id.RoomID, token string) error {
	return q.Exec(ctx, deleteRoomPuppet, roomID, token)
}
