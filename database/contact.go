package database

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"go.mau.fi/util/dbutil"
	"maunium.net/go/mautrix/id"
)

// Contact states: what a Matrix user decided about an XMPP user.
const (
	ContactPending = "pending" // asked to see the user's presence; no answer yet
	ContactAllowed = "allowed"
	ContactDenied  = "denied"
	ContactBlocked = "blocked" // neither presence nor chats
)

// Contact is a Matrix user's decision about an XMPP user (a bare JID).
type Contact struct {
	UserID    id.UserID
	JID       string
	State     string
	UpdatedAt time.Time
}

// ContactQuery keeps the Matrix users' decisions about XMPP contacts.
type ContactQuery struct{ db *dbutil.Database }

const (
	getContact = `SELECT state FROM contact WHERE user_id=$1 AND jid=$2`
	putContact = `INSERT INTO contact (user_id, jid, state, updated_at) VALUES ($1, $2, $3, $4)
		ON CONFLICT (user_id, jid) DO UPDATE SET state=excluded.state, updated_at=excluded.updated_at`
	deleteContact       = `DELETE FROM contact WHERE user_id=$1 AND jid=$2`
	listContacts        = `SELECT user_id, jid, state, updated_at FROM contact WHERE user_id=$1 ORDER BY state, jid`
	deleteContactsByJID = `DELETE FROM contact WHERE jid=$1`
)

// State returns what user decided about jid, "" for nothing.
func (q *ContactQuery) State(ctx context.Context, user id.UserID, jid string) (string, error) {
	var state string
	err := q.db.QueryRow(ctx, getContact, user, jid).Scan(&state)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	return state, err
}

// Set stores a decision.
func (q *ContactQuery) Set(ctx context.Context, user id.UserID, jid, state string) error {
	_, err := q.db.Exec(ctx, putContact, user, jid, state, time.Now().UnixMilli())
	return err
}

// Delete forgets user's decision about jid.
func (q *ContactQuery) Delete(ctx context.Context, user id.UserID, jid string) error {
	_, err := q.db.Exec(ctx, deleteContact, user, jid)
	return err
}

// List returns a Matrix user's contacts, by state and JID.
func (q *ContactQuery) List(ctx context.Context, user id.UserID) ([]Contact, error) {
	rows, err := q.db.Query(ctx, listContacts, user)
	return dbutil.NewRowIterWithError(rows, func(row dbutil.Scannable) (Contact, error) {
		var c Contact
		var ts int64
		err := row.Scan(&c.UserID, &c.JID, &c.State, &ts)
		c.UpdatedAt = time.UnixMilli(ts)
		return c, err
	}, err).AsList()
}

// DeleteByJID forgets every decision about an XMPP user (forget).
func (q *ContactQuery) DeleteByJID(ctx context.Context, jid string) error {
	_, err := q.db.Exec(ctx, deleteContactsByJID, jid)
	return err
}
