package database

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"hash/fnv"
	"os"
	"sync"
	"time"

	"github.com/rs/zerolog"
	"go.mau.fi/util/dbutil"
)

// ErrInstanceActive means another process runs the bridge on this SQLite
// database.
var ErrInstanceActive = errors.New("another mxpp process is using this database")

// InstanceLock is held by the one process that runs a bridge on a
// database: on PostgreSQL a session advisory lock on a connection of its
// own, which PostgreSQL lets go when that process dies or its connection
// is lost; on SQLite an exclusive lock on a file beside the database.
type InstanceLock struct {
	conn *sql.Conn
	key  int64
	file *os.File

	lost     chan struct{}
	stop     chan struct{}
	stopOnce sync.Once
	done     chan struct{}
}

// instanceKey is the advisory lock key of the bridge named name (its
// appservice ID and component domain): shards sharing a PostgreSQL
// database in different schemas, or a server, do not block each other.
func instanceKey(name string) int64 {
	h := fnv.New64a()
	_, _ = h.Write([]byte("mxpp-instance\x00" + name))
	return int64(h.Sum64())
}

// AcquireInstance takes the instance lock of the bridge named name. On
// SQLite it does not wait: while another process holds the database it
// fails with ErrInstanceActive. On PostgreSQL a process that finds the lock
// taken is a standby: it calls standby once and waits until the active
// process lets go (it stops, dies, or PostgreSQL drops its connection,
// which keepalive probes detect within failover) or ctx ends. The active
// process checks its lock's connection every failover/5 and closes Lost
// when it is gone: it must then stop, as the standby takes over.
func (db *Database) AcquireInstance(ctx context.Context, name string, failover time.Duration, log zerolog.Logger, standby func()) (*InstanceLock, error) {
	if db.Dialect != dbutil.Postgres {
		if db.path == "" {
			return &InstanceLock{lost: make(chan struct{})}, nil // in memory: no other process can share it
		}
		f, err := lockFile(db.path + ".lock")
		if err != nil {
			return nil, err
		}
		return &InstanceLock{file: f, lost: make(chan struct{})}, nil
	}
	if failover <= 0 {
		failover = DefaultConfig().FailoverTimeout
	}
	key := instanceKey(name)
	backoff := time.Second
	waiting := false
	for {
		conn, err := db.lockConn(ctx, key, failover, func() {
			if !waiting {
				waiting = true
				standby()
			}
		})
		if err == nil {
			l := &InstanceLock{conn: conn, key: key, lost: make(chan struct{}), stop: make(chan struct{}), done: make(chan struct{})}
			go l.watch(max(failover/5, 100*time.Millisecond))
			return l, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		log.Warn().Err(err).Stringer("retry_in", backoff).Msg("Failed to take the instance lock; trying again")
		select {
		case <-time.After(backoff):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		backoff = min(2*backoff, 30*time.Second)
	}
}

// lockConn takes the advisory lock on a connection of its own, first
// without waiting, then (after calling wait) waiting for it.
func (db *Database) lockConn(ctx context.Context, key int64, failover time.Duration, wait func()) (*sql.Conn, error) {
	conn, err := db.RawDB.Conn(ctx)
	if err != nil {
		return nil, err
	}
	// The server probes an idle connection, so that the lock of a process
	// it can no longer reach is dropped within failover (ignored on Unix
	// sockets, where a dead peer is seen at once).
	idle := max(int(failover/time.Second)/2, 1)
	every := max(int(failover/time.Second)/6, 1)
	for _, set := range []string{
		fmt.Sprintf("SET tcp_keepalives_idle = %d", idle),
		fmt.Sprintf("SET tcp_keepalives_interval = %d", every),
		"SET tcp_keepalives_count = 3",
	} {
		if _, err = conn.ExecContext(ctx, set); err != nil {
			_ = conn.Close()
			return nil, err
		}
	}
	var got bool
	if err = conn.QueryRowContext(ctx, `SELECT pg_try_advisory_lock($1)`, key).Scan(&got); err == nil && !got {
		wait()
		_, err = conn.ExecContext(ctx, `SELECT pg_advisory_lock($1)`, key)
	}
	if err != nil {
		_ = conn.Close()
		return nil, err
	}
	return conn, nil
}

// watch pings the lock's connection until Release, and closes lost when a
// ping fails: the lock may be gone with it.
func (l *InstanceLock) watch(every time.Duration) {
	defer close(l.done)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-t.C:
			// A session lock lasts as long as its session: while the
			// connection answers, the lock is held.
			ctx, cancel := context.WithTimeout(context.Background(), every)
			err := l.conn.PingContext(ctx)
			cancel()
			if err != nil {
				close(l.lost)
				return
			}
		}
	}
}

// Lost is closed when the process may no longer hold the lock.
func (l *InstanceLock) Lost() <-chan struct{} { return l.lost }

// Release lets the lock go, so that a standby takes over at once.
func (l *InstanceLock) Release() {
	if l == nil {
		return
	}
	if l.conn != nil {
		l.stopOnce.Do(func() { close(l.stop) })
		<-l.done
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, _ = l.conn.ExecContext(ctx, `SELECT pg_advisory_unlock($1)`, l.key)
		cancel()
		_ = l.conn.Close()
	}
	if l.file != nil {
		_ = unlockFile(l.file)
	}
}
