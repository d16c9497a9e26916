package portal

import (
	"slices"
	"strings"
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
	bare     jid.JID
	nick     string
	puppet   id.UserID
	sessions map[string]jid.JID
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
	groups  map[string]map[id.UserID]*member // base key -> members
}

func newRoster() *roster {
	return &roster{owner: map[string]id.UserID{}, members: map[id.UserID]*member{}, groups: map[string]map[id.UserID]*member{}}
}

// owns reports who holds a nick, or whose display name it is.
func (r *roster) owns(nick string) (id.UserID, bool) {
	if u, ok := r.owner[msgconv.NickKey(nick)]; ok {
		return u, true
	}
	for u := range r.groups[msgconv.NickKey(nick)] {
		return u, true
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
		delete(r.groups[oldKey], userID)
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
	if r.groups[newKey] == nil {
		r.groups[newKey] = map[id.UserID]*member{}
	}
	r.groups[newKey][userID] = m
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
	delete(r.groups[key], userID)
	r.release(m.nick, userID)
	return m, r.renick(key)
}

// renick gives the members of one display name group their nicks.
func (r *roster) renick(key string) []nickChange {
	group := r.groups[key]
	if len(group) == 0 {
		delete(r.groups, key)
		return nil
	}
	ms := make([]*member, 0, len(group))
	for _, m := range group {
		ms = append(ms, m)
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
