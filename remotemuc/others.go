package remotemuc

import (
	"maunium.net/go/mautrix/id"
	"mellium.im/xmpp/jid"

	"github.com/mxpp/mxpp/database"
	"github.com/mxpp/mxpp/msgconv"
)

// other is an occupant of the MUC that is not one of the portal's Matrix
// users: on Matrix, a puppet.
//
// Who it is decides which puppet stands for it. In a non-anonymous room,
// its real bare JID: the same puppet as that XMPP user has everywhere on
// the bridge. In a semi-anonymous room never its real JID, even where the
// bridge could see it: a puppet of the room's own (matrix
// RoomPuppetID), named by a token of the XEP-0421 occupant-id where the room
// gives trusted ones, else of the nick the occupant had when the bridge
// first saw it; a nick change (303) moves the nick, not the puppet.
type other struct {
	nick   string
	puppet id.UserID
	// key names the occupant as a message's sender in the message map: a
	// real bare JID, or room/token.
	key string
	// token is set for a room puppet; it is stored with its nick.
	token       string
	occupantID  string
	affiliation string
	role        string
	// present: the room said it is in (since the last rejoin, see
	// unconfirmed); onMatrix: its puppet joined the Matrix room.
	present  bool
	onMatrix bool
	// shownAs is the name its puppet has in the Matrix room.
	shownAs string
}

// others are the other occupants of a MUC, by nick, and the room puppets
// the database knows (by token), so that a room without occupant-ids finds
// an occupant that changed its nick again after a restart.
type others struct {
	byNick map[string]*other // by msgconv.NickKey
	// tokens maps the nick key of a known room puppet to its token.
	tokens map[string]string
}

func newOthers(stored []*database.RoomPuppet) *others {
	o := &others{byNick: map[string]*other{}, tokens: map[string]string{}}
	for _, rp := range stored {
		o.tokens[msgconv.NickKey(rp.Nick)] = rp.Token
	}
	return o
}

// get returns the occupant with a nick, or nil.
func (o *others) get(nick string) *other { return o.byNick[msgconv.NickKey(nick)] }

// put stores an occupant under its nick.
func (o *others) put(x *other) { o.byNick[msgconv.NickKey(x.nick)] = x }

// rename moves an occupant to a new nick.
func (o *others) rename(x *other, nick string) {
	delete(o.byNick, msgconv.NickKey(x.nick))
	if x.token != "" {
		delete(o.tokens, msgconv.NickKey(x.nick))
		o.tokens[msgconv.NickKey(nick)] = x.token
	}
	x.nick = nick
	o.put(x)
}

// remove forgets an occupant that left.
func (o *others) remove(x *other) {
	if o.byNick[msgconv.NickKey(x.nick)] == x {
		delete(o.byNick, msgconv.NickKey(x.nick))
	}
}

// byPuppet returns the occupant a puppet stands for, or nil.
func (o *others) byPuppet(u id.UserID) *other {
	for _, x := range o.byNick {
		if x.puppet == u {
			return x
		}
	}
	return nil
}

// byRealJID returns the occupant with a real bare JID, or nil.
func (o *others) byRealJID(bare jid.JID) *other {
	for _, x := range o.byNick {
		if x.token == "" && x.key == bare.String() {
			return x
		}
	}
	return nil
}
