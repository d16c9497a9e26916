package bridge

// Presence both ways: a Matrix user's presence becomes the XMPP presence of
// their contact JID (to the contacts they allowed) and the show and status
// of their occupant presence in hosted rooms; an XMPP occupant's presence
// becomes their puppet's Matrix presence. Each user's changes are
// throttled (bridge.presence.min_interval).

import (
	"context"
	"sync"
	"time"

	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/mxpp/mxpp/database"
	"github.com/mxpp/mxpp/portal"
	"github.com/mxpp/mxpp/remotemuc"
	"github.com/mxpp/mxpp/xmpp"
)

// shown is a Matrix user's presence as XMPP shows it.
type shown struct {
	offline      bool
	show, status string
	idleSince    time.Time // zero when active; not a change by itself
}

func (s shown) same(o shown) bool {
	return s.offline == o.offline && s.show == o.show && s.status == o.status
}

// shownOf maps Matrix presence to XMPP's (RFC 6121 §4.7.2.1): online is
// available, unavailable is away, offline is offline.
func shownOf(c *event.PresenceEventContent, now time.Time) shown {
	s := shown{status: c.StatusMessage}
	switch c.Presence {
	case event.PresenceOnline:
	case event.PresenceUnavailable:
		s.show = "away"
	default:
		s.offline = true
	}
	if c.Presence != event.PresenceOnline && !c.CurrentlyActive && c.LastActiveAgo > 0 {
		s.idleSince = now.Add(-time.Duration(c.LastActiveAgo) * time.Millisecond).Truncate(time.Second)
	}
	return s
}

// puppetShown is an XMPP user's presence as Matrix shows it.
type puppetShown struct {
	presence event.Presence
	status   string
}

func (s puppetShown) same(o puppetShown) bool { return s == o }

// throttle lets at most one change per key through per interval: a change
// within the interval waits until it ends, and only the newest of those
// that waited goes then. It keeps what went last, to drop repeats and to
// answer what a user's presence is.
type throttle[V any] struct {
	interval time.Duration
	same     func(a, b V) bool
	send     func(key string, v V)

	mu      sync.Mutex
	entries map[string]*throttled[V]
}

type throttled[V any] struct {
	sent    V
	at      time.Time
	next    V
	waiting bool
}

func newThrottle[V any](interval time.Duration, same func(a, b V) bool, send func(string, V)) *throttle[V] {
	return &throttle[V]{interval: interval, same: same, send: send, entries: map[string]*throttled[V]{}}
}

// update notes key's new value and sends it now, later or not at all.
func (t *throttle[V]) update(key string, v V) {
	t.mu.Lock()
	e := t.entries[key]
	if e == nil {
		t.entries[key] = &throttled[V]{sent: v, at: time.Now()}
		t.mu.Unlock()
		t.send(key, v)
		return
	}
	if e.waiting {
		e.next = v
		t.mu.Unlock()
		return
	}
	if t.same(e.sent, v) {
		e.sent = v // keeps what is not a change (idle time) fresh
		t.mu.Unlock()
		return
	}
	if wait := t.interval - time.Since(e.at); wait > 0 {
		e.next, e.waiting = v, true
		t.mu.Unlock()
		time.AfterFunc(wait, func() { t.flush(key) })
		return
	}
	e.sent, e.at = v, time.Now()
	t.mu.Unlock()
	t.send(key, v)
}

// flush sends what waited for key, unless it came back to what was sent.
func (t *throttle[V]) flush(key string) {
	t.mu.Lock()
	e := t.entries[key]
	e.waiting = false
	if t.same(e.sent, e.next) {
		t.mu.Unlock()
		return
	}
	e.sent, e.at = e.next, time.Now()
	v := e.sent
	t.mu.Unlock()
	t.send(key, v)
}

// last returns what went last for key.
func (t *throttle[V]) last(key string) (V, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	e := t.entries[key]
	if e == nil {
		var zero V
		return zero, false
	}
	return e.sent, true
}

func (b *Bridge) initPresence() {
	interval := b.Config.Bridge.Presence.MinInterval
	b.presence = newThrottle(interval, shown.same, func(user string, s shown) {
		go b.spreadPresence(b.ctx, id.UserID(user), s)
	})
	b.puppetPresence = newThrottle(interval, puppetShown.same, func(puppet string, s puppetShown) {
		go func() {
			if err := b.Matrix.SetPresence(b.ctx, id.UserID(puppet), s.presence, s.status); err != nil {
				b.Log.Debug().Err(err).Str("puppet", puppet).Msg("Failed to set a puppet's presence")
			}
		}()
	})
}

// matrixPresence takes a Matrix user's presence event (pushed, or read by
// the bot's sync). The bridge's own users and users who may not use the
// bridge are left out.
func (b *Bridge) matrixPresence(ctx context.Context, evt *event.Event) {
	if !b.Config.Bridge.Presence.Enabled || b.Matrix.IsBridgeUser(evt.Sender) || !b.permitted(evt.Sender) {
		return
	}
	c := evt.Content.AsPresence()
	if c == nil {
		return
	}
	b.presence.update(evt.Sender.String(), shownOf(c, time.Now()))
}

// spreadPresence tells a Matrix user's allowed contacts and the running
// rooms they are joined to.
func (b *Bridge) spreadPresence(ctx context.Context, user id.UserID, s shown) {
	if contacts, err := b.DB.Contact.List(ctx, user); err != nil {
		b.Log.Warn().Err(err).Stringer("user_id", user).Msg("Failed to list contacts for a presence change")
	} else if from, err := b.userJID(user); err == nil {
		for _, c := range contacts {
			if c.State != database.ContactAllowed {
				continue
			}
			to, err := xmpp.ParseJID(c.JID)
			if err != nil {
				continue
			}
			pres := &xmpp.Presence{From: xmpp.A(from), To: xmpp.A(to)}
			s.apply(pres, false)
			b.send(ctx, pres)
		}
	}
	// The running rooms the user is in, by the state store's index: not
	// every running room, of which there can be ten thousand.
	rooms, err := b.states.RoomsOf(ctx, user)
	if err != nil {
		b.Log.Warn().Err(err).Stringer("user_id", user).Msg("Failed to list a user's rooms for a presence change")
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, roomID := range rooms {
		switch p := b.byRoom[roomID].(type) {
		case *portal.Portal:
			p.TryQueue(portal.PresenceChanged{User: user})
		case *remotemuc.Portal:
			p.TryQueue(remotemuc.PresenceChanged{User: user})
		}
	}
}

// contactPresence sets a contact presence from a Matrix user to what the
// bridge knows of their presence; unknown is available.
func (b *Bridge) contactPresence(user id.UserID, pres *xmpp.Presence) {
	if !b.Config.Bridge.Presence.Enabled {
		return
	}
	if s, ok := b.presence.last(user.String()); ok {
		s.apply(pres, false)
	}
}

// apply sets a presence's show, status and idle time. Offline is
// unavailable as a contact, and extended away as a member of a room (still
// a member).
func (s shown) apply(pres *xmpp.Presence, member bool) {
	pres.Show, pres.Status = s.show, s.status
	switch {
	case s.offline && member:
		pres.Show = "xa"
	case s.offline:
		pres.Type = xmpp.TypeUnavailable
	}
	if !s.idleSince.IsZero() {
		pres.Idle = &xmpp.Idle{Since: s.idleSince}
	}
}

// memberPresence adds a Matrix member's presence to their occupant
// presence in a room: offline members are still members, so they show as
// extended away rather than gone.
func (b *Bridge) memberPresence(user id.UserID, pres *xmpp.Presence) {
	if !b.Config.Bridge.Presence.Enabled || pres.Type != "" {
		return
	}
	s, ok := b.presence.last(user.String())
	if !ok {
		return
	}
	s.apply(pres, true)
}

// occupantPresence takes an XMPP occupant's presence for their puppet:
// available and chat are online, away, xa and dnd unavailable; leaving the
// last room is offline.
func (b *Bridge) occupantPresence(puppet id.UserID, show, status string, online bool) {
	if !b.Config.Bridge.Presence.Enabled {
		return
	}
	s := puppetShown{presence: event.PresenceOnline, status: status}
	switch {
	case !online:
		s = puppetShown{presence: event.PresenceOffline}
	case show == "away" || show == "xa" || show == "dnd":
		s.presence = event.PresenceUnavailable
	}
	b.puppetPresence.update(puppet.String(), s)
}
