package database

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"maunium.net/go/mautrix/id"
)

// TestGroupCommit: writes that come while a commit runs share the next one,
// each still learns its own outcome (rows changed, or its own error), and
// what the database holds afterwards is what each write asked for.
func TestGroupCommit(t *testing.T) {
	db := openTestDB(t)
	ctx := context.Background()
	room := id.RoomID("!batch:hs.test")
	if err := db.Portal.Insert(ctx, &Portal{RoomID: room, MUCLocal: "batch", CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Message.BeginSend(ctx, room, "old"); err != nil {
		t.Fatal(err)
	}

	// The first write's commit waits until the others are queued.
	release := make(chan struct{})
	var mu sync.Mutex
	var sizes []int
	db.stmts.batch.hold = func(n int) {
		mu.Lock()
		first := len(sizes) == 0
		sizes = append(sizes, n)
		mu.Unlock()
		if first {
			<-release
		}
	}
	queued := func() int {
		db.stmts.batch.mu.Lock()
		defer db.stmts.batch.mu.Unlock()
		return len(db.stmts.batch.queue)
	}

	const n = 10
	firstDone := make(chan error, 1)
	go func() { _, err := db.Message.BeginSend(ctx, room, "first"); firstDone <- err }()
	waitUntil(t, func() bool { mu.Lock(); defer mu.Unlock(); return len(sizes) == 1 })
	var wg sync.WaitGroup
	unfinished := make([]bool, n)
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			switch {
			case i == 0: // a send noted before: reported unfinished
				unfinished[i], errs[i] = db.Message.BeginSend(ctx, room, "old")
			case i == 1: // a room without a portal: a foreign key error of its own
				errs[i] = db.Message.InsertSent(ctx, &Message{RoomID: "!nowhere:hs.test", EventID: "$bad", SenderJID: "a@x.test",
					StanzaID: "bad", Timestamp: time.Now()}, "bad")
			case i%2 == 0:
				unfinished[i], errs[i] = db.Message.BeginSend(ctx, room, fmt.Sprintf("t%d", i))
			default:
				errs[i] = db.Message.InsertSent(ctx, &Message{RoomID: room, EventID: id.EventID(fmt.Sprintf("$e%d", i)), SenderJID: "a@x.test",
					StanzaID: fmt.Sprintf("s%d", i), Timestamp: time.Now()}, fmt.Sprintf("t%d", i))
			}
		}()
	}
	waitUntil(t, func() bool { return queued() == n })
	close(release)
	wg.Wait()
	if err := <-firstDone; err != nil {
		t.Fatal(err)
	}

	mu.Lock()
	if len(sizes) < 2 || sizes[1] != n {
		t.Errorf("commits of %v writes; want 1, then the %d queued meanwhile in one", sizes, n)
	}
	mu.Unlock()
	for i := range n {
		switch {
		case i == 1:
			if errs[i] == nil {
				t.Error("the write to a room without a portal succeeded")
			}
			if m, _ := db.Message.GetByEventID(ctx, "!nowhere:hs.test", "$bad"); m != nil {
				t.Error("the failed write left a row")
			}
		case errs[i] != nil:
			t.Errorf("write %d failed with the bad one: %v", i, errs[i])
		case i == 0 && !unfinished[i]:
			t.Error("a send noted before was not reported unfinished")
		case i > 1 && i%2 == 0 && unfinished[i]:
			t.Errorf("new send %d reported unfinished", i)
		case i%2 == 1:
			if m, err := db.Message.GetByEventID(ctx, room, id.EventID(fmt.Sprintf("$e%d", i))); m == nil || err != nil {
				t.Errorf("mapping %d: %v, %v", i, m, err)
			}
		}
	}
	// The new notes are stored: noting them again reports them unfinished.
	if again, err := db.Message.BeginSend(ctx, room, "t2"); err != nil || !again {
		t.Errorf("the note of t2 was not stored: %v, %v", again, err)
	}
}

// TestBatcherClose: a write queued before Close is committed; one after
// gets ErrClosed.
func TestBatcherClose(t *testing.T) {
	db := openTestDB(t)
	ctx := context.Background()
	room := id.RoomID("!close:hs.test")
	if err := db.Portal.Insert(ctx, &Portal{RoomID: room, MUCLocal: "close", CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	held, release := make(chan struct{}), make(chan struct{})
	db.stmts.batch.hold = func(int) { held <- struct{}{}; <-release }
	done := make(chan error, 1)
	go func() { _, err := db.Message.BeginSend(ctx, room, "queued"); done <- err }()
	<-held // taken into a batch, waiting to commit
	closed := make(chan struct{})
	go func() { db.stmts.batch.close(); close(closed) }()
	waitUntil(t, func() bool { db.stmts.batch.mu.Lock(); defer db.stmts.batch.mu.Unlock(); return db.stmts.batch.closed })
	if _, err := db.Message.BeginSend(ctx, room, "late"); !errors.Is(err, ErrClosed) {
		t.Errorf("a write after Close: %v; want ErrClosed", err)
	}
	close(release)
	if err := <-done; err != nil {
		t.Errorf("the write queued before Close: %v", err)
	}
	<-closed
}

// waitUntil polls cond for up to ten seconds.
func waitUntil(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 10 s")
		}
	}
}
