package portal

import (
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
	"maunium.net/go/mautrix/id"
	"mellium.im/xmpp/jid"

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
	nick        string
}

// roster hands out nicks: every Matrix member and XMPP occupant holds one,
// and no two hold nicks that differ only in case or Unicode form.
type roster struct {
	owner   map[string]id.UserID // nick key -> Matrix user or puppet
	members map[id.UserID]*member
}

func newRoster() *roster {
	return &roster{owner: map[string]id.UserID{}, members: map[id.UserID]*member{}}
}

func nickKey(nick string) string {
	return strings.ToLower(norm.NFKC.String(nick))
}

// owns reports who holds a nick.
func (r *roster) owns(nick string) (id.UserID, bool) {
	u, ok := r.owner[nickKey(nick)]
	return u, ok
}

// claim gives a nick to an XMPP occupant's puppet.
func (r *roster) claim(nick string, puppet id.UserID) { r.owner[nickKey(nick)] = puppet }

// release frees a nick if owner holds it.
func (r *roster) release(nick string, owner id.UserID) {
	if r.owner[nickKey(nick)] == owner {
		delete(r.owner, nickKey(nick))
	}
}

// add adds a Matrix member or updates its display name. It returns the
// member and its previous nick ("" if it is new).
func (r *roster) add(userID id.UserID, displayname string) (m *member, oldNick string) {
	m = r.members[userID]
	if m != nil {
		if m.displayname == displayname {
			return m, m.nick
		}
		oldNick = m.nick
		r.release(m.nick, userID)
	} else {
		m = &member{userID: userID}
		r.members[userID] = m
	}
	m.displayname = displayname
	m.nick = r.pick(userID, displayname)
	r.claim(m.nick, userID)
	return m, oldNick
}

// remove drops a Matrix member and frees its nick.
func (r *roster) remove(userID id.UserID) *member {
	m := r.members[userID]
	if m != nil {
		delete(r.members, userID)
		r.release(m.nick, userID)
	}
	return m
}

// pick finds a free nick for a member: the display name, else the display
// name with the user's localpart, else with the whole user ID.
func (r *roster) pick(userID id.UserID, displayname string) string {
	local := userID.Localpart()
	base := cleanNick(displayname)
	if base == "" {
		base = local
	}
	candidates := []string{base, base + " (" + local + ")", base + " (" + string(userID) + ")", string(userID)}
	for _, c := range candidates {
		if owner, taken := r.owns(c); !taken || owner == userID {
			return c
		}
	}
	return string(userID) + " (" + xmpp.RandomID()[:6] + ")"
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
