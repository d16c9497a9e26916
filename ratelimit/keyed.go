// Package ratelimit limits how often each of many keys (a JID, a domain, a
// room) may do something. It imports no package of this module, so that
// the bridge and the portals share it.
package ratelimit

import (
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Keyed limits how often each key (a bare JID, a domain) may do
// something, with a token bucket per key. Keys whose bucket is full again
// are dropped when the map grows (at most once per every, so that a flood
// of new keys does not make each of them scan the map), so it stays about
// as small as the set of keys busy lately; beyond MaxKeys, new keys are
// refused until it shrinks.
type Keyed struct {
	every time.Duration
	burst int

	mu     sync.Mutex
	byKey  map[string]*rate.Limiter
	pruned time.Time
}

// Limiter map bounds: pruning starts at pruneAt keys, new keys are
// refused at MaxKeys.
const (
	pruneAt = 1024
	MaxKeys = 64 * 1024
)

// New returns a limiter that gives each key burst tokens at once, then
// one every every.
func New(every time.Duration, burst int) *Keyed {
	return &Keyed{every: every, burst: burst, byKey: map[string]*rate.Limiter{}}
}

// Allow takes a token of key's bucket, reporting false if it has none.
func (l *Keyed) Allow(key string, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	lim := l.byKey[key]
	if lim == nil {
		if len(l.byKey) >= pruneAt && now.Sub(l.pruned) >= min(l.every, time.Second) {
			l.pruned = now
			for k, v := range l.byKey {
				if v.TokensAt(now) >= float64(l.burst) {
					delete(l.byKey, k)
				}
			}
		}
		if len(l.byKey) >= MaxKeys {
			return false
		}
		lim = rate.NewLimiter(rate.Every(l.every), l.burst)
		l.byKey[key] = lim
	}
	return lim.AllowN(now, 1)
}
