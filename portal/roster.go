package portal

import (
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"maunium.net/go/mautrix/id"
	"mellium.im/xmpp/jid"

	"github.com/mxpp/mxpp/msgconv"
	"github.com/mxpp/mxpp/xmpp"
)

// maxNickRunes bounds the nicks made from Matrix display names.
const maxNickRunes = 64

// occupant is an XMPP user in the MUC, with every session (full JID) it
// joined from. All sessions share the nick and the puppet.
type occupant struct {
	bare   jid.JID
	nick   string
	puppet id.UserID
	// sessions is a slice, not a map: an occupant has one or a few, and a
	// bridge at size holds tens of thousands of them.
	sessions []session
}

// session is one client an occupant joined from, and what the liveness
// checks know of it.
type session struct {
	jid      jid.JID
	lastSeen time.Time
	misses   int  // liveness pings unanswered in a row
	pinging  bool // a liveness ping is out
}

// find returns the session joined from full, or nil.
func (o *occupant) find(full jid.JID) *session {
	for i := range o.sessions {
		if o.sessions[i].jid.Equal(full) {
			return &o.sessions[i]
		}
	}
	return nil
}

// join adds a session unless it is in already, and returns it.
func (o *occupant) join(full jid.JID) *session {
	if s := o.find(full); s != nil {
		return s
	}
	o.sessions = append(o.sessions, session{jid: full})
	return &o.sessions[len(o.sessions)-1]
}

// leave removes a session.
func (o *occupant) leave(full jid.JID) {
	o.sessions = slices.DeleteFunc(o.sessions, func(s session) bool { return s.jid.Equal(full) })
}

// jids returns the full JIDs of the occupant's sessions.
func (o *occupant) jids() []jid.JID {
	out := make([]jid.JID, len(o.sessions))
	for i, s := range o.sessions {
		out[i] = s.jid
	}
	return out
}

// member is a Matrix user of the room as the MUC shows it.
type member struct {
	userID      id.UserID
	displayname string
	base        string // the name the nick is made from
	nick        string
}

// nickChange is a member whose nick changed: old is "" for a new member.
type nickChange struct {
	m   *member
	old string
}

// roster hands out nicks: every Matrix member and XMPP occupant holds one,
// and no two hold nicks that differ only in case or Unicode form. A member's
// nick is its display name; members who share one all get their localpart
// added, so a nick never depends on who joined first and stays the same
// across restarts. A display name in use by members is reserved for them.
type roster struct {
	owner   map[string]id.UserID // nick key -> Matrix user or puppet
	members map[id.UserID]*member
	// groups holds the members by the key of their display name; most
	// groups have one member, so a slice, not a map, in each.
	groups map[string][]*member
}

func newRoster() *roster {
	return &roster{owner: map[string]id.UserID{}, members: map[id.UserID]*member{}, groups: map[string][]*member{}}
}

// owns reports who holds a nick, or whose display name it is.
func (r *roster) owns(nick string) (id.UserID, bool) {
	if u, ok := r.owner[msgconv.NickKey(nick)]; ok {
		return u, true
	}
	if group := r.groups[msgconv.NickKey(nick)]; len(group) > 0 {
		return group[0].userID, true
	}
	return "", false
}

// claim gives a nick to an XMPP occupant's puppet.
func (r *roster) claim(nick string, puppet id.UserID) { r.owner[msgconv.NickKey(nick)] = puppet }

// release frees a nick if owner holds it.
func (r *roster) release(nick string, owner id.UserID) {
	if r.owner[msgconv.NickKey(nick)] == owner {
		delete(r.owner, msgconv.NickKey(nick))
	}
}

// set adds a Matrix member or updates its display name, and returns every
// member whose nick changed, this one included.
func (r *roster) set(userID id.UserID, displayname string) []nickChange {
	m := r.members[userID]
	oldKey := ""
	if m != nil {
		if m.displayname == displayname {
			return nil
		}
		oldKey = msgconv.NickKey(m.base)
		r.leaveGroup(oldKey, m)
	} else {
		m = &member{userID: userID}
		r.members[userID] = m
	}
	m.displayname = displayname
	m.base = cleanNick(displayname)
	if m.base == "" {
		m.base = cleanNick(userID.Localpart())
	}
	if m.base == "" {
		m.base = string(userID)
	}
	newKey := msgconv.NickKey(m.base)
	r.groups[newKey] = append(r.groups[newKey], m)
	changes := r.renick(newKey)
	if oldKey != "" && oldKey != newKey {
		changes = append(changes, r.renick(oldKey)...)
	}
	return changes
}

// remove drops a Matrix member, frees its nick and returns it with the
// nick changes of the members that shared its display name.
func (r *roster) remove(userID id.UserID) (*member, []nickChange) {
	m := r.members[userID]
	if m == nil {
		return nil, nil
	}
	delete(r.members, userID)
	key := msgconv.NickKey(m.base)
	r.leaveGroup(key, m)
	r.release(m.nick, userID)
	return m, r.renick(key)
}

// leaveGroup takes a member out of its display name group.
func (r *roster) leaveGroup(key string, m *member) {
	r.groups[key] = slices.DeleteFunc(r.groups[key], func(o *member) bool { return o == m })
}

// renick gives the members of one display name group their nicks.
func (r *roster) renick(key string) []nickChange {
	ms := r.groups[key]
	if len(ms) == 0 {
		delete(r.groups, key)
		return nil
	}
	for _, m := range ms {
		r.release(m.nick, m.userID)
	}
	slices.SortFunc(ms, func(a, b *member) int { return strings.Compare(string(a.userID), string(b.userID)) })
	var changes []nickChange
	for _, m := range ms {
		var candidates []string
		if len(ms) == 1 {
			candidates = append(candidates, m.base)
		}
		candidates = append(candidates, m.base+" ("+m.userID.Localpart()+")", m.base+" ("+string(m.userID)+")", string(m.userID))
		nick := ""
		for _, c := range candidates {
			if owner, taken := r.owner[msgconv.NickKey(c)]; (!taken || owner == m.userID) && validNick(c) {
				nick = c
				break
			}
		}
		if nick == "" {
			nick = string(m.userID) + " (" + xmpp.RandomID()[:6] + ")"
		}
		r.claim(nick, m.userID)
		if nick != m.nick {
			changes = append(changes, nickChange{m: m, old: m.nick})
			m.nick = nick
		}
	}
	return changes
}

// cleanNick makes a display name usable as a MUC nick (a JID resourcepart):
// no control characters, no surrounding spaces, bounded length, and valid
// under the resourcepart's PRECIS profile. It returns "" if nothing is left.
func cleanNick(s string) string {
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || r == utf8.RuneError {
			return -1
		}
		return r
	}, s)
	s = strings.TrimSpace(s)
	if utf8.RuneCountInString(s) > maxNickRunes {
		s = strings.TrimSpace(string([]rune(s)[:maxNickRunes]))
	}
	if s == "" {
		return ""
	}
	if _, err := jid.New("", "x.test", s); err != nil {
		return ""
	}
	return s
}

// validNick reports whether s can be a MUC nick (a JID resourcepart).
func validNick(s string) bool {
	_, err := jid.New("", "x.test", s)
	return err == nil
}
