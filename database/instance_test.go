package database

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"go.mau.fi/util/dbutil"

	"github.com/mxpp/mxpp/database/dbtest"
)

// TestInstanceLock: one process runs a bridge on a database. On SQLite a
// second one is refused; on PostgreSQL it waits as a standby and takes
// over when the first releases, or when the first's connection is gone
// (which the first learns from Lost).
func TestInstanceLock(t *testing.T) {
	ctx := context.Background()
	cfg := DefaultConfig()
	cfg.Type, cfg.URI = dbtest.Fresh(t)
	open := func() *Database {
		db, err := Open(ctx, cfg, zerolog.Nop())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = db.Close() })
		return db
	}
	first, second := open(), open()
	acquire := func(db *Database, name string, standby func()) (*InstanceLock, error) {
		return db.AcquireInstance(ctx, name, time.Second, zerolog.Nop(), standby)
	}
	lock, err := acquire(first, "a", func() { t.Error("the first process waited") })
	if err != nil {
		t.Fatal(err)
	}
	if first.Dialect != dbutil.Postgres {
		if _, err = acquire(second, "a", func() {}); !errors.Is(err, ErrInstanceActive) {
			t.Fatalf("a second process on the SQLite file: %v; want ErrInstanceActive", err)
		}
		lock.Release()
		again, err := acquire(second, "a", func() {})
		if err != nil {
			t.Fatalf("after the release: %v", err)
		}
		again.Release()
		return
	}

	// Another bridge (another name) on the same server is not blocked.
	other, err := acquire(second, "b", func() { t.Error("another bridge waited") })
	if err != nil {
		t.Fatal(err)
	}
	other.Release()

	// The second waits as a standby and takes over on release.
	waiting := make(chan struct{})
	got := make(chan *InstanceLock, 1)
	go func() {
		l, err := acquire(second, "a", func() { close(waiting) })
		if err != nil {
			t.Error(err)
		}
		got <- l
	}()
	<-waiting
	select {
	case <-got:
		t.Fatal("the standby took the lock while the first held it")
	case <-time.After(200 * time.Millisecond):
	}
	lock.Release()
	standby := <-got

	// The first comes back as the standby; the active one's connection
	// is cut: it learns so from Lost, and the standby takes over.
	waiting = make(chan struct{})
	go func() {
		l, err := acquire(first, "a", func() { close(waiting) })
		if err != nil {
			t.Error(err)
		}
		got <- l
	}()
	<-waiting
	var pid int
	if err = standby.conn.QueryRowContext(ctx, `SELECT pg_backend_pid()`).Scan(&pid); err != nil {
		t.Fatal(err)
	}
	if _, err = first.Exec(ctx, `SELECT pg_terminate_backend($1)`, pid); err != nil {
		t.Fatal(err)
	}
	select {
	case <-standby.Lost():
	case <-time.After(10 * time.Second):
		t.Fatal("the active process did not learn that its lock's connection was gone")
	}
	select {
	case l := <-got:
		l.Release()
	case <-time.After(10 * time.Second):
		t.Fatal("the standby did not take over")
	}
	standby.Release()
}
