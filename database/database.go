// Package database stores the bridge's ID mappings in SQLite: portals,
// puppets, occupants and the message-ID map. It never stores message bodies.
//
// It imports neither the matrix nor the xmpp package of this module: rows hold
// plain identifiers, typed with mautrix's id types where they are Matrix IDs.
package database

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"strings"

	"github.com/rs/zerolog"
	"go.mau.fi/util/dbutil"
	"maunium.net/go/mautrix/id"
	_ "modernc.org/sqlite" // registers the pure-Go "sqlite" driver

	"github.com/mxpp/mxpp/database/upgrades"
)

// Config is the database section of the bridge config.
type Config struct {
	// URI names the SQLite database file, as a path or a file: URI.
	URI string `yaml:"uri"`
}

// DefaultConfig returns the defaults used for keys the config leaves out.
func DefaultConfig() Config {
	return Config{URI: "file:mxpp.db"}
}

// Validate reports the first problem with the section, naming its key.
func (c Config) Validate() error {
	if _, err := sqliteDSN(c.URI); err != nil {
		return fmt.Errorf("database.uri: %w", err)
	}
	return nil
}

// Database is the bridge database with one query helper per table.
type Database struct {
	*dbutil.Database

	Portal   *PortalQuery
	Puppet   *PuppetQuery
	Occupant *OccupantQuery
	Message  *MessageQuery

	stmts    *stmtCache
	Reaction *ReactionQuery
	Settings *RoomSettingsQuery

	// The portals into MUCs hosted elsewhere.
	RemoteRoom     *RemoteRoomQuery
	RemoteOccupant *RemoteOccupantQuery
	RoomPuppet     *RoomPuppetQuery

	// Matrix events that wait for their room key.
	KeyWait *KeyWaitQuery
}

// Open opens the database named by cfg and runs the pending upgrades.
func Open(ctx context.Context, cfg Config, log zerolog.Logger) (*Database, error) {
	dsn, err := sqliteDSN(cfg.URI)
	if err != nil {
		return nil, err
	}
	raw, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("failed to open database: %w", err)
	}
	// SQLite has one writer at a time; a few connections let reads proceed
	// beside it in WAL mode, more only queue on the busy timeout.
	raw.SetMaxOpenConns(4)
	raw.SetMaxIdleConns(4)
	db, err := dbutil.NewWithDB(raw, "sqlite")
	if err != nil {
		_ = raw.Close()
		return nil, fmt.Errorf("failed to wrap database: %w", err)
	}
	db.Owner = "mxpp"
	db.Log = dbutil.ZeroLogger(log)
	db.UpgradeTable = upgrades.Table
	if err = db.Upgrade(ctx); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("failed to upgrade database: %w", err)
	}
	return New(db), nil
}

// New wraps an open and upgraded dbutil database.
func New(db *dbutil.Database) *Database {
	stmts := &stmtCache{db: db}
	return &Database{
		Database: db,
		stmts:    stmts,
		Portal:   &PortalQuery{dbutil.MakeQueryHelper(db, newPortal)},
		Puppet:   &PuppetQuery{dbutil.MakeQueryHelper(db, newPuppet)},
		Occupant: &OccupantQuery{dbutil.MakeQueryHelper(db, newOccupant)},
		Message:  &MessageQuery{dbutil.MakeQueryHelper(db, newMessage), stmts},
		Reaction: &ReactionQuery{dbutil.MakeQueryHelper(db, newReaction)},
		Settings: &RoomSettingsQuery{dbutil.MakeQueryHelper(db, newRoomSettings)},

		RemoteRoom:     &RemoteRoomQuery{dbutil.MakeQueryHelper(db, newRemoteRoom)},
		RemoteOccupant: &RemoteOccupantQuery{dbutil.MakeQueryHelper(db, newRemoteOccupant)},
		RoomPuppet:     &RoomPuppetQuery{dbutil.MakeQueryHelper(db, newRoomPuppet)},
		KeyWait:        &KeyWaitQuery{db: db},
	}
}

// sqliteDSN turns the configured URI into a modernc DSN with the pragmas the
// bridge relies on: foreign keys (cascading deletes), WAL (readers beside the
// writer), a busy timeout and immediate write transactions (no SQLITE_BUSY on
// lock upgrades), NORMAL sync, which is durable across process crashes, and
// times in SQLite's format.
func sqliteDSN(uri string) (string, error) {
	switch {
	case uri == "":
		return "", fmt.Errorf("must name a SQLite file")
	case strings.HasPrefix(uri, "postgres://"), strings.HasPrefix(uri, "postgresql://"):
		return "", fmt.Errorf("only SQLite is supported, not %q", uri[:strings.Index(uri, ":")])
	}
	path, query, _ := strings.Cut(strings.TrimPrefix(uri, "file:"), "?")
	if path == "" {
		return "", fmt.Errorf("must name a SQLite file")
	}
	params, err := url.ParseQuery(query)
	if err != nil {
		return "", fmt.Errorf("invalid query: %w", err)
	}
	params.Add("_pragma", "foreign_keys(1)")
	params.Add("_pragma", "journal_mode(WAL)")
	params.Add("_pragma", "busy_timeout(10000)")
	params.Add("_pragma", "synchronous(NORMAL)")
	params.Set("_txlock", "immediate")
	// Times as SQLite's own functions read them: the crypto store finds
	// expired room keys with unixepoch(received_at), which cannot parse
	// the driver's default format and would never find any.
	params.Set("_time_format", "sqlite")
	return "file:" + path + "?" + params.Encode(), nil
}

// Close releases the prepared statements and closes the database.
func (db *Database) Close() error {
	db.stmts.close()
	return db.Database.Close()
}

// ForgetMatrixUser removes a user from mautrix's membership cache, which
// lives in the same database.
func (db *Database) ForgetMatrixUser(ctx context.Context, userID id.UserID) error {
	for _, q := range []string{`DELETE FROM mx_user_profile WHERE user_id=$1`, `DELETE FROM mx_registrations WHERE user_id=$1`} {
		if _, err := db.Exec(ctx, q, userID); err != nil {
			return fmt.Errorf("failed to clear the membership cache: %w", err)
		}
	}
	return nil
}
