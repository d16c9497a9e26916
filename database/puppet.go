package database

import (
	"context"
	"time"

	"go.mau.fi/util/dbutil"
	"maunium.net/go/mautrix/id"
)

// Puppet is the Matrix user that stands for one XMPP user.
type Puppet struct {
	// JID is the XMPP user's bare JID.
	JID  string
	MXID id.UserID
	// Registered is set once the homeserver knows the user.
	Registered bool
	// AvatarHash is the XEP-0153 hash of the avatar last copied to the
	// puppet, "" if it has none.
	AvatarHash string
	CreatedAt  time.Time
	// LeftAt is when the user left its last room; zero while in one.
	LeftAt time.Time
}

func newPuppet(_ *dbutil.QueryHelper[*Puppet]) *Puppet { return &Puppet{} }

const (
	puppetColumns   = `jid, mxid, registered, avatar_hash, created_at, left_at`
	getPuppetByJID  = `SELECT ` + puppetColumns + ` FROM puppet WHERE jid=$1`
	getPuppetByMXID = `SELECT ` + puppetColumns + ` FROM puppet WHERE mxid=$1`
	upsertPuppet    = `INSERT INTO puppet (` + puppetColumns + `) VALUES ($1, $2, $3, $4, $5, 0) ON CONFLICT (jid) DO UPDATE SET registered=excluded.registered, left_at=0`
	setAvatarHash   = `UPDATE puppet SET avatar_hash=$2 WHERE jid=$1`
	setLeftAt       = `UPDATE puppet SET left_at=$2 WHERE jid=$1`
	getGonePuppets  = `SELECT ` + puppetColumns + ` FROM puppet WHERE left_at>0 AND left_at<$1 AND NOT EXISTS (SELECT 1 FROM occupant WHERE occupant.user_jid=puppet.jid)`
	deletePuppet    = `DELETE FROM puppet WHERE jid=$1`
	deleteGone      = `DELETE FROM puppet WHERE jid=$1 AND left_at>0 AND left_at<$2 AND NOT EXISTS (SELECT 1 FROM occupant WHERE occupant.user_jid=puppet.jid)`
	countPuppets    = `SELECT COUNT(*) FROM puppet`
)

// Scan implements dbutil.DataStruct.
func (p *Puppet) Scan(row dbutil.Scannable) (*Puppet, error) {
	var created, left int64
	err := row.Scan(&p.JID, &p.MXID, &p.Registered, &p.AvatarHash, &created, &left)
	if err != nil {
		return nil, err
	}
	p.CreatedAt = time.UnixMilli(created)
	if left > 0 {
		p.LeftAt = time.UnixMilli(left)
	}
	return p, nil
}

// PuppetQuery reads and writes the puppet table.
type PuppetQuery struct {
	*dbutil.QueryHelper[*Puppet]
}

// GetByJID returns the puppet of a bare JID, or nil if there is none.
func (pq *PuppetQuery) GetByJID(ctx context.Context, bare string) (*Puppet, error) {
	return pq.QueryOne(ctx, getPuppetByJID, bare)
}

// GetByMXID returns the puppet with a Matrix ID, or nil if there is none.
func (pq *PuppetQuery) GetByMXID(ctx context.Context, mxid id.UserID) (*Puppet, error) {
	return pq.QueryOne(ctx, getPuppetByMXID, mxid)
}

// Upsert adds a puppet or updates its registration flag.
func (pq *PuppetQuery) Upsert(ctx context.Context, p *Puppet) error {
	return pq.Exec(ctx, upsertPuppet, p.JID, p.MXID, p.Registered, p.AvatarHash, p.CreatedAt.UnixMilli())
}

// SetAvatarHash stores the hash of the avatar copied to a puppet.
func (pq *PuppetQuery) SetAvatarHash(ctx context.Context, bare, hash string) error {
	return pq.Exec(ctx, setAvatarHash, bare, hash)
}

// Delete removes a puppet and its occupant sessions.
func (pq *PuppetQuery) Delete(ctx context.Context, bare string) error {
	return pq.Exec(ctx, deletePuppet, bare)
}

// DeleteIfGone deletes a puppet only if its user is still gone as GetGone
// says, and reports whether it did: a user who came back since is kept.
func (pq *PuppetQuery) DeleteIfGone(ctx context.Context, bare string, before time.Time) (bool, error) {
	res, err := pq.GetDB().Exec(ctx, deleteGone, bare, before.UnixMilli())
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

// Count returns the number of puppets.
func (pq *PuppetQuery) Count(ctx context.Context) (n int, err error) {
	err = pq.GetDB().QueryRow(ctx, countPuppets).Scan(&n)
	return
}

// SetLeftAt notes when a puppet's user left its last room (zero: it is in
// one again).
func (pq *PuppetQuery) SetLeftAt(ctx context.Context, bare string, t time.Time) error {
	var ms int64
	if !t.IsZero() {
		ms = t.UnixMilli()
	}
	return pq.Exec(ctx, setLeftAt, bare, ms)
}

// GetGone returns the puppets whose users left their last room before t
// and joined none since.
func (pq *PuppetQuery) GetGone(ctx context.Context, before time.Time) ([]*Puppet, error) {
	return pq.QueryMany(ctx, getGonePuppets, before.UnixMilli())
}
