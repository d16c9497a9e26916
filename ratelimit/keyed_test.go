package ratelimit

import (
	"fmt"
	"testing"
	"time"
)

func TestKeyedLimiter(t *testing.T) {
	l := New(time.Minute, 3)
	now := time.Now()
	for i := range 3 {
		if !l.Allow("a@x", now) {
			t.Fatalf("call %d of a burst of 3 refused", i+1)
		}
	}
	if l.Allow("a@x", now) {
		t.Error("a fourth call in the same instant was allowed")
	}
	if !l.Allow("b@x", now) {
		t.Error("another key was limited by the first")
	}
	if !l.Allow("a@x", now.Add(time.Minute)) {
		t.Error("no token came back after the interval")
	}
	// Keys whose bucket filled up again are dropped once the map is large;
	// busy ones are kept.
	for i := range 1500 {
		l.Allow(fmt.Sprintf("u%d@x", i), now)
	}
	l.Allow("a@x", now.Add(3*time.Minute))
	l.Allow("a@x", now.Add(3*time.Minute))
	if !l.Allow("late@x", now.Add(3*time.Minute)) {
		t.Fatal("a new key was refused")
	}
	if n := len(l.byKey); n != 2 {
		t.Errorf("%d keys kept; want the busy one and the new one", n)
	}
}

// TestKeyedLimiterBound: a flood of fresh keys cannot grow the map past
// MaxKeys; new keys are refused until the old ones' buckets are full
// again and they can be dropped.
func TestKeyedLimiterBound(t *testing.T) {
	l := New(time.Hour, 1)
	now := time.Now()
	for i := range MaxKeys {
		if !l.Allow(fmt.Sprintf("u%d@x", i), now) {
			t.Fatalf("key %d refused below the bound", i)
		}
	}
	if l.Allow("fresh@x", now.Add(time.Minute)) {
		t.Error("a fresh key was let in beyond the bound")
	}
	if len(l.byKey) > MaxKeys {
		t.Errorf("the map grew to %d keys", len(l.byKey))
	}
	if !l.Allow("fresh@x", now.Add(2*time.Hour)) {
		t.Error("a fresh key was refused once the old keys could be dropped")
	}
}
