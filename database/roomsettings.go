package database

import (
	"context"
	"strings"
	"time"

	"go.mau.fi/util/dbutil"
	"maunium.net/go/mautrix/id"
)

// RoomSettings are what operators decided about a room: whether XMPP may
// reach it, and which XMPP domains.
type RoomSettings struct {
	RoomID         id.RoomID
	Exposed        bool
	ExposedBy      id.UserID
	ExposedAt      time.Time
	AllowedDomains []string
	DeniedDomains  []string
	// PMOff turns occupants' private messages off (XEP-0045 §7.5); the
	// zero value, as for a room without settings, allows them.
	PMOff bool
}

func newRoomSettings(_ *dbutil.QueryHelper[*RoomSettings]) *RoomSettings { return &RoomSettings{} }

const (
	roomSettingsColumns = `room_id, exposed, exposed_by, exposed_at, allowed_domains, denied_domains, allow_pm`
	getRoomSettings     = `SELECT ` + roomSettingsColumns + ` FROM room_settings WHERE room_id=$1`
	getExposedRooms     = `SELECT ` + roomSettingsColumns + ` FROM room_settings WHERE exposed=true ORDER BY room_id`
	getAllRoomSettings  = `SELECT ` + roomSettingsColumns + ` FROM room_settings ORDER BY room_id`
	upsertRoomSettings  = `INSERT INTO room_settings (` + roomSettingsColumns + `) VALUES ($1, $2, $3, $4, $5, $6, $7)
		ON CONFLICT (room_id) DO UPDATE SET exposed=excluded.exposed, exposed_by=excluded.exposed_by,
		exposed_at=excluded.exposed_at, allowed_domains=excluded.allowed_domains, denied_domains=excluded.denied_domains,
		allow_pm=excluded.allow_pm`
)

// Scan implements dbutil.DataStruct.
func (s *RoomSettings) Scan(row dbutil.Scannable) (*RoomSettings, error) {
	var at int64
	var allowed, denied string
	var allowPM bool
	if err := row.Scan(&s.RoomID, &s.Exposed, &s.ExposedBy, &at, &allowed, &denied, &allowPM); err != nil {
		return nil, err
	}
	s.PMOff = !allowPM
	s.ExposedAt = time.UnixMilli(at)
	s.AllowedDomains, s.DeniedDomains = strings.Fields(allowed), strings.Fields(denied)
	return s, nil
}

// RoomSettingsQuery reads and writes the room_settings table.
type RoomSettingsQuery struct {
	*dbutil.QueryHelper[*RoomSettings]
}

// Get returns a room's settings; a room without any gets the zero value.
func (q *RoomSettingsQuery) Get(ctx context.Context, roomID id.RoomID) (*RoomSettings, error) {
	s, err := q.QueryOne(ctx, getRoomSettings, roomID)
	if err == nil && s == nil {
		s = &RoomSettings{RoomID: roomID}
	}
	return s, err
}

// GetExposed returns the settings of every exposed room.
func (q *RoomSettingsQuery) GetExposed(ctx context.Context) ([]*RoomSettings, error) {
	return q.QueryMany(ctx, getExposedRooms)
}

// GetAll returns every room's stored settings: exposed rooms and rooms with
// domain lists of their own.
func (q *RoomSettingsQuery) GetAll(ctx context.Context) ([]*RoomSettings, error) {
	return q.QueryMany(ctx, getAllRoomSettings)
}

// Put stores a room's settings.
func (q *RoomSettingsQuery) Put(ctx context.Context, s *RoomSettings) error {
	return q.Exec(ctx, upsertRoomSettings, s.RoomID, s.Exposed, s.ExposedBy, s.ExposedAt.UnixMilli(),
		strings.Join(s.AllowedDomains, " "), strings.Join(s.DeniedDomains, " "), !s.PMOff)
}
