// Package database stores the bridge's ID mappings in SQLite or
// PostgreSQL: portals, puppets, occupants and the message-ID map. It never
// stores message bodies.
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
	"time"

	_ "github.com/lib/pq" // registers the pure-Go "postgres" driver
	"github.com/rs/zerolog"
	"go.mau.fi/util/dbutil"
	"maunium.net/go/mautrix/id"
	_ "modernc.org/sqlite" // registers the pure-Go "sqlite" driver

	"github.com/mxpp/mxpp/database/upgrades"
)

// Config is the database section of the bridge config.
type Config struct {
	// Type is sqlite (the default) or postgres.
	Type string `yaml:"type"`
	// URI names the database: for SQLite a file, as a path or a file:
	// URI; for PostgreSQL a postgres:// URI (postgres://user:pass@host/db?
	// sslmode=…; a Unix socket with ?host=/var/run/postgresql).
	URI string `yaml:"uri"`
	// The connection pool (PostgreSQL; SQLite keeps a few connections of
	// its own): most connections open and idle at once, and how long one
	// may stay idle or open at all (0: no limit).
	MaxOpenConns    int           `yaml:"max_open_conns"`
	MaxIdleConns    int           `yaml:"max_idle_conns"`
	MaxConnIdleTime time.Duration `yaml:"max_conn_idle_time"`
	MaxConnLifetime time.Duration `yaml:"max_conn_lifetime"`
	// FailoverTimeout bounds how long the lock of an active bridge process
	// that PostgreSQL can no longer reach outlives it (keepalive probes),
	// and how soon that process notices and stops (it checks every fifth
	// of it): a standby takes over within about this time. A process that
	// stops or dies on a reachable host lets go at once.
	FailoverTimeout time.Duration `yaml:"failover_timeout"`
}

// Database types.
const (
	TypeSQLite   = "sqlite"
	TypePostgres = "postgres"
)

// DefaultConfig returns the defaults used for keys the config leaves out.
func DefaultConfig() Config {
	return Config{Type: TypeSQLite, URI: "file:mxpp.db", MaxOpenConns: 20, MaxIdleConns: 2, FailoverTimeout: 10 * time.Second}
}

// Validate reports the first problem with the section, naming its key.
func (c Config) Validate() error {
	switch c.Type {
	case TypeSQLite, "":
		if _, err := sqliteDSN(c.URI); err != nil {
			return fmt.Errorf("database.uri: %w", err)
		}
	case TypePostgres:
		if !strings.HasPrefix(c.URI, "postgres://") && !strings.HasPrefix(c.URI, "postgresql://") {
			return fmt.Errorf("database.uri: a PostgreSQL database is named by a postgres:// URI")
		}
	default:
		return fmt.Errorf("database.type: %q is neither %s nor %s", c.Type, TypeSQLite, TypePostgres)
	}
	if c.MaxOpenConns < 0 || c.MaxIdleConns < 0 || c.MaxConnIdleTime < 0 || c.MaxConnLifetime < 0 {
		return fmt.Errorf("database: pool settings must not be negative")
	}
	if c.FailoverTimeout != 0 && c.FailoverTimeout < time.Second {
		return fmt.Errorf("database.failover_timeout: must be at least 1s")
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

	// Matrix users' decisions about XMPP contacts.
	Contact *ContactQuery

	// path is the SQLite database's file ("" in memory or on PostgreSQL),
	// beside which the instance lock lives.
	path string
}

// Open opens the database named by cfg and runs the pending upgrades.
func Open(ctx context.Context, cfg Config, log zerolog.Logger) (*Database, error) {
	driver, dsn := TypePostgres, cfg.URI // lib/pq's driver name
	if cfg.Type != TypePostgres {
		var err error
		if dsn, err = sqliteDSN(cfg.URI); err != nil {
			return nil, err
		}
		driver = "sqlite" // modernc's
	}
	raw, err := sql.Open(driver, dsn)
	if err != nil {
		return nil, fmt.Errorf("failed to open database: %w", err)
	}
	if driver == TypePostgres {
		raw.SetMaxOpenConns(cfg.MaxOpenConns)
		raw.SetMaxIdleConns(cfg.MaxIdleConns)
		raw.SetConnMaxIdleTime(cfg.MaxConnIdleTime)
		raw.SetConnMaxLifetime(cfg.MaxConnLifetime)
	} else {
		// SQLite has one writer at a time; a few connections let reads
		// proceed beside it in WAL mode, more only queue on the busy
		// timeout.
		raw.SetMaxOpenConns(4)
		raw.SetMaxIdleConns(4)
	}
	db, err := dbutil.NewWithDB(raw, driver)
	if err != nil {
		_ = raw.Close()
		return nil, fmt.Errorf("failed to wrap database: %w", err)
	}
	db.Owner = "mxpp"
	db.Log = dbutil.ZeroLogger(log)
	db.UpgradeTable = upgrades.Table
	out := New(db)
	if driver != TypePostgres {
		out.path = sqlitePath(cfg.URI)
	}
	if err = out.Locked(ctx, db.Upgrade); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("failed to upgrade database: %w", err)
	}
	return out, nil
}

// upgradeLockKey names the PostgreSQL advisory lock that upgrades take.
const upgradeLockKey = 0x6d787070 // "mxpp"

// Locked runs fn, an upgrade of a schema in the database (the bridge's,
// mautrix's state or crypto store), so that two processes starting at once
// do not both run it: on PostgreSQL under a session advisory lock, which
// the other waits for; SQLite serialises writers by itself.
func (db *Database) Locked(ctx context.Context, fn func(context.Context) error) error {
	if db.Dialect != dbutil.Postgres {
		return fn(ctx)
	}
	conn, err := db.RawDB.Conn(ctx)
	if err != nil {
		return fmt.Errorf("failed to connect for the upgrade lock: %w", err)
	}
	defer conn.Close()
	if _, err = conn.ExecContext(ctx, `SELECT pg_advisory_lock($1)`, upgradeLockKey); err != nil {
		return fmt.Errorf("failed to take the upgrade lock: %w", err)
	}
	defer func() {
		_, _ = conn.ExecContext(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock($1)`, upgradeLockKey)
	}()
	return fn(ctx)
}

// New wraps an open and upgraded dbutil database.
func New(db *dbutil.Database) *Database {
	stmts := &stmtCache{db: db}
	stmts.batch.commit = stmts.run
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
		Contact:        &ContactQuery{db: db},
	}
}

// sqliteDSN turns the configured URI into a modernc DSN with the pragmas the
// bridge relies on: foreign keys (cascading deletes), WAL (readers beside the
// writer), a busy timeout and immediate write transactions (no SQLITE_BUSY on
// lock upgrades), NORMAL sync, which is durable across process crashes, and
// times in SQLite's format.
// sqlitePath is the file a SQLite URI names, "" for a database in memory.
func sqlitePath(uri string) string {
	path, query, _ := strings.Cut(strings.TrimPrefix(uri, "file:"), "?")
	if path == ":memory:" || strings.Contains(query, "mode=memory") {
		return ""
	}
	return path
}

func sqliteDSN(uri string) (string, error) {
	switch {
	case uri == "":
		return "", fmt.Errorf("must name a SQLite file")
	case strings.HasPrefix(uri, "postgres://"), strings.HasPrefix(uri, "postgresql://"):
		return "", fmt.Errorf("a postgres:// URI needs database.type: postgres")
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
