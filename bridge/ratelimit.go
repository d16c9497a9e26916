package bridge

import (
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// keyedLimiter limits how often each key (a bare JID) may do something,
// with a token bucket per key. Keys whose bucket is full again are dropped
// when the map grows, so it stays as small as the set of busy senders.
type keyedLimiter struct {
	every time.Duration
	burst int

	mu    sync.Mutex
	byKey map[string]*rate.Limiter
}

func newKeyedLimiter(every time.Duration, burst int) *keyedLimiter {
	return &keyedLimiter{every: every, burst: burst, byKey: map[string]*rate.Limiter{}}
}

// allow takes a token of key's bucket, reporting false if it has none.
func (l *keyedLimiter) allow(key string, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	lim := l.byKey[key]
	if lim == nil {
		if len(l.byKey) >= 1024 {
			for k, v := range l.byKey {
				if v.TokensAt(now) >= float64(l.burst) {
					delete(l.byKey, k)
				}
			}
		}
		lim = rate.NewLimiter(rate.Every(l.every), l.burst)
		l.byKey[key] = lim
	}
	return lim.AllowN(now, 1)
}
