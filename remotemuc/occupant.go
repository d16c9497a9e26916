// Package remotemuc holds the portals into MUCs hosted elsewhere: Matrix
// rooms whose Matrix members are occupants of a groupchat on another XMPP
// service, each from its own JID, and whose other occupants are puppets on
// Matrix. (The rooms the component hosts itself, where XMPP users come into
// Matrix rooms, are package portal.) Both kinds run on package roomloop and
// translate messages with package msgconv; this package imports neither
// portal nor bridge.
//
// Occupant is the life of one Matrix user's occupant in one MUC; Portal is
// one such room.
package remotemuc

import (
	"fmt"
	"maps"
	"slices"
	"time"

	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"github.com/mxpp/mxpp/xmpp"
)

// State is where an occupant is in its life.
type State int

// The states of an occupant.
const (
	// Out: not in the room and not trying (before Join, after leaving, or
	// after the room refused or removed it for good).
	Out State = iota
	// Joining: the join presence is out; messages wait for the
	// self-presence.
	Joining
	// Joined: the room sent the self-presence (status 110).
	Joined
	// Lost: the room dropped the occupant for a reason that passes (the
	// service shut down, an error in transit); the caller rejoins with
	// backoff.
	Lost
)

func (s State) String() string {
	return [...]string{"out", "joining", "joined", "lost"}[s]
}

// MaxQueued bounds the messages that wait for the self-presence.
const MaxQueued = 100

// Occupant is one Matrix user's occupant of one MUC hosted elsewhere. It is
// not safe for concurrent use: the portal's loop owns it. Its methods
// return what to send and what to tell the Matrix user; they send nothing
// themselves.
type Occupant struct {
	Room jid.JID // the MUC's bare JID
	From jid.JID // our full JID: the Matrix user's bare JID and a fixed resource

	state      State
	nick       string   // the nick the room knows us by, once joined
	candidates []string // nicks to try, in order
	try        int      // index into candidates of the nick tried last
	password   string   // only for the join presence; never stored
	queue      []held
	renaming   string // the nick asked for while joined, until answered
	rejoining  bool   // the join under way is a Rejoin with the nick the room knew
	// statusDue is set when Status was asked for while joining: the join
	// presence carried the status before; the new one goes once in.
	statusDue bool
	// refusals counts the refusals of rejoins since the occupant was last
	// in (maxRejoinRefusals).
	refusals int

	// HistorySince, when set, makes the next join ask the room for its
	// history since then (XEP-0045 §7.2.15) instead of none: in a room
	// without an archive, the history shows which of our messages it took.
	HistorySince time.Time
}

// held is a message waiting for the self-presence, with its place in the
// order messages go out in (see SendOrdered).
type held struct {
	m     *xmpp.Message
	order int64
}

// NewOccupant returns an occupant that is Out, with the nicks to try in
// order (xmpp.NickCandidates).
func NewOccupant(room, from jid.JID, candidates []string) *Occupant {
	return &Occupant{Room: room.Bare(), From: from, candidates: slices.Clone(candidates)}
}

// State returns where the occupant is.
func (o *Occupant) State() State { return o.state }

// Nick returns the nick the room knows the occupant by, "" unless joined.
func (o *Occupant) Nick() string {
	if o.state != Joined {
		return ""
	}
	return o.nick
}

// Outcome is what one step of an occupant asks of the caller: stanzas to
// send, in order, and a notice for the Matrix user, if any.
type Outcome struct {
	Send   []any
	Notice string
	// Removed is set when the room put the occupant out for good (a kick,
	// a ban, a members-only change, the room's end): the caller takes the
	// Matrix user out of the portal room too, with this reason.
	Removed string
}

// Join starts joining with the first nick, asking for no history (the
// portal catches up from the room's archive instead), with password if the
// room needs one.
func (o *Occupant) Join(password string) Outcome {
	if len(o.candidates) == 0 {
		o.state = Out
		return Outcome{Notice: fmt.Sprintf("Cannot join %s: no usable nick (set a display name with letters or digits).", o.Room)}
	}
	o.password, o.try, o.rejoining = password, 0, false
	return o.join()
}

// Rejoin joins again with the nick the room last knew, after the occupant
// was Lost, the link came back or the bridge restarted.
func (o *Occupant) Rejoin(password string) Outcome {
	o.password = password
	if o.nick == "" {
		return o.Join(password)
	}
	o.rejoining = true
	return o.joinAs(o.nick)
}

// Resume sets the nick the room knew the occupant by before a restart, for
// Rejoin.
func (o *Occupant) Resume(nick string) { o.nick = nick }

// Claims reports whether a nick in the room is this occupant's: the one it
// holds, or the one it is trying while joining. Presences under it are
// ours, not another occupant's.
func (o *Occupant) Claims(nick string) bool {
	switch o.state {
	case Joined:
		return o.nick == nick || o.renaming == nick
	case Joining:
		return o.try < len(o.candidates) && o.candidates[o.try] == nick || o.nick == nick
	}
	return false
}

// Tried returns the nick the occupant holds or is trying, "" when out.
func (o *Occupant) Tried() string {
	switch {
	case o.state == Joined || o.state == Joining && o.nick != "" && o.try == 0:
		return o.nick
	case o.state == Joining && o.try < len(o.candidates):
		return o.candidates[o.try]
	}
	return ""
}

// Lost marks a joined occupant as no longer in the room, for a Rejoin: a
// self-ping or a bounced message showed that the room lost track of it.
func (o *Occupant) Lost() {
	if o.state == Joined {
		o.state = Lost
	}
}

// SetCandidates replaces the nicks to try (the user's display name
// changed); a later Join starts from the first.
func (o *Occupant) SetCandidates(candidates []string) { o.candidates = slices.Clone(candidates) }

// Rename asks the room for the first of new nicks while joined (the user's
// display name changed; XEP-0045 §7.6). The room answers with the nick
// change (303) and the self-presence under the new nick, or refuses, and
// the occupant keeps its nick.
func (o *Occupant) Rename(candidates []string) Outcome {
	o.SetCandidates(candidates)
	o.try = 0
	if o.state != Joined || len(candidates) == 0 || candidates[0] == o.nick {
		return Outcome{}
	}
	to, err := o.Room.WithResource(candidates[0])
	if err != nil {
		return Outcome{}
	}
	o.renaming = candidates[0]
	return Outcome{Send: []any{&xmpp.Presence{ID: xmpp.RandomID(), From: xmpp.A(o.From), To: xmpp.A(to)}}}
}

// Status is the presence that tells the room a joined occupant's new
// show and status (XEP-0045 §7.7); the portal adds them. Nothing while
// not joined: the join carries them. Asked for while joining (the join
// presence carried the old ones), it goes out once the room has us in.
func (o *Occupant) Status() Outcome {
	switch o.state {
	case Joining:
		o.statusDue = true
	case Joined:
		return o.status()
	}
	return Outcome{}
}

func (o *Occupant) status() Outcome {
	to, err := o.Room.WithResource(o.nick)
	if err != nil {
		return Outcome{}
	}
	return Outcome{Send: []any{&xmpp.Presence{ID: xmpp.RandomID(), From: xmpp.A(o.From), To: xmpp.A(to)}}}
}

// join joins with the nick candidates[try].
func (o *Occupant) join() Outcome { return o.joinAs(o.candidates[o.try]) }

func (o *Occupant) joinAs(nick string) Outcome {
	o.state, o.statusDue = Joining, false
	none := 0
	to, err := o.Room.WithResource(nick)
	if err != nil {
		return o.nextNick(stanza.JIDMalformed)
	}
	history := &xmpp.MUCHistory{MaxStanzas: &none}
	if !o.HistorySince.IsZero() {
		since := o.HistorySince.UTC()
		history = &xmpp.MUCHistory{Since: &since}
	}
	return Outcome{Send: []any{&xmpp.Presence{ID: xmpp.RandomID(), From: xmpp.A(o.From), To: xmpp.A(to),
		MUC: &xmpp.MUCJoin{Password: o.password, History: history}}}}
}

// nextNick tries the next nick after a refusal of the last one: any next
// one after a conflict, the last one (the localpart) after jid-malformed.
func (o *Occupant) nextNick(cond stanza.Condition) Outcome {
	next := o.try + 1
	if cond == stanza.JIDMalformed {
		next = len(o.candidates) - 1
	}
	if next <= o.try || next >= len(o.candidates) {
		o.state = Out
		if cond == stanza.Conflict {
			return Outcome{Notice: fmt.Sprintf("Cannot join %s: every nick tried is taken (%q). Change your display name and join again.", o.Room, o.candidates)}
		}
		return Outcome{Notice: fmt.Sprintf("Cannot join %s: the service refuses the nicks tried (%q). Change your display name and join again.", o.Room, o.candidates)}
	}
	o.try = next
	return o.join()
}

// Send sends a message to the room, or holds it until the self-presence
// came while joining. A message that cannot be held is refused with a
// notice rather than lost silently.
func (o *Occupant) Send(m *xmpp.Message) Outcome { return o.SendOrdered(m, 0) }

// SendOrdered is Send for a message with a place in the order of the
// user's messages (its Matrix timestamp): held with others, it goes out
// before those that came later, also when it is sent again after the room
// refused it. Order 0 is after everything held.
func (o *Occupant) SendOrdered(m *xmpp.Message, order int64) Outcome {
	m.From, m.To, m.Type = xmpp.A(o.From), xmpp.A(o.Room), xmpp.TypeGroupchat
	switch o.state {
	case Joined:
		return Outcome{Send: []any{m}}
	case Joining, Lost:
		if len(o.queue) >= MaxQueued {
			return Outcome{Notice: fmt.Sprintf("Not sent to %s: more than %d messages are waiting for the room to let you in.", o.Room, MaxQueued)}
		}
		i := len(o.queue)
		for order != 0 && i > 0 && (o.queue[i-1].order == 0 || o.queue[i-1].order > order) {
			i--
		}
		o.queue = slices.Insert(o.queue, i, held{m: m, order: order})
		return Outcome{}
	default:
		return Outcome{Notice: fmt.Sprintf("Not sent: you are not in %s.", o.Room)}
	}
}

// Leave leaves the room, dropping what waits.
func (o *Occupant) Leave() Outcome {
	was := o.state
	o.state, o.queue = Out, nil
	if was == Out || o.try >= len(o.candidates) {
		return Outcome{}
	}
	nick := o.nick
	if nick == "" {
		nick = o.candidates[o.try]
	}
	to, err := o.Room.WithResource(nick)
	if err != nil {
		return Outcome{}
	}
	return Outcome{Send: []any{&xmpp.Presence{Type: xmpp.TypeUnavailable, From: xmpp.A(o.From), To: xmpp.A(to)}}}
}

// joinErrors says, for the conditions a room answers a join with (XEP-0045
// §7.2.6-7.2.11, and ejabberd's limit on rooms per user), why the user is
// not in.
var joinErrors = map[stanza.Condition]string{
	stanza.NotAuthorized:        "the room needs a password, and the one given (if any) is wrong",
	stanza.RegistrationRequired: "the room is members-only and you are not a member",
	stanza.Forbidden:            "you are banned from the room",
	stanza.ServiceUnavailable:   "the room is full or does not take more occupants",
	stanza.ItemNotFound:         "the room does not exist (the bridge never creates rooms)",
	stanza.NotAllowed:           "the room does not let you in",
	stanza.ResourceConstraint:   "the service limits how many rooms one user may be in",
}

// HandlePresence takes a presence the room sent to the occupant's JID.
func (o *Occupant) HandlePresence(p *xmpp.Presence) Outcome {
	if !p.From.Bare().Equal(o.Room) {
		return Outcome{}
	}
	if p.Type == xmpp.TypeError {
		if o.state == Joined && o.renaming != "" && p.From.Resourcepart() == o.renaming && p.Error != nil {
			nick := o.renaming
			o.renaming = ""
			why := string(p.Error.Condition)
			if p.Error.Condition == stanza.Conflict {
				why = "it is taken"
			}
			return Outcome{Notice: fmt.Sprintf("%s kept your nick %q: it refused %q (%s).", o.Room, o.nick, nick, why)}
		}
		if o.state != Joining || p.Error == nil {
			return Outcome{}
		}
		cond := p.Error.Condition
		if cond == stanza.Conflict || cond == stanza.JIDMalformed {
			return o.nextNick(cond)
		}
		if unreachable(p.Error) || o.rejoining && p.Error.Type == stanza.Wait {
			// The room's server cannot be reached, or the room asks a
			// rejoin to wait (its service is starting again): the caller
			// tries again later, and what waits keeps waiting.
			o.state = Lost
			return Outcome{}
		}
		if o.rejoining && o.refusals < maxRejoinRefusals {
			// A room that had us in and did not remove us refuses the
			// rejoin after an outage: more likely a server still starting
			// (Prosody answers not-allowed while its s2s module loads)
			// than a decision. Tried again a few times, with the caller's
			// backoff, before it counts.
			o.refusals++
			o.state = Lost
			return Outcome{}
		}
		o.state, o.queue = Out, nil
		why := joinErrors[cond]
		if why == "" {
			why = "the room refused the join: " + string(cond)
		}
		if text := errorText(p.Error); text != "" {
			why += " (" + text + ")"
		}
		return Outcome{Notice: fmt.Sprintf("Cannot join %s: %s.", o.Room, why)}
	}
	if !p.HasStatus(xmpp.StatusSelf) {
		return Outcome{}
	}
	if p.Type == xmpp.TypeUnavailable {
		return o.removed(p)
	}
	// Our self-presence: the resourcepart is the nick the room gave us
	// (status 210 when it changed the one we asked for).
	o.nick = p.From.Resourcepart()
	if o.nick == o.renaming {
		o.renaming = ""
	}
	first := o.state != Joined
	o.state, o.refusals = Joined, 0
	var out Outcome
	if p.HasStatus(xmpp.StatusCreated) {
		// The room did not exist and our join made it: leave it again.
		o.state, o.queue = Out, nil
		to, _ := o.Room.WithResource(o.nick)
		out.Send = append(out.Send, &xmpp.Presence{Type: xmpp.TypeUnavailable, From: xmpp.A(o.From), To: xmpp.A(to)})
		out.Notice = fmt.Sprintf("Cannot join %s: the room does not exist (the bridge never creates rooms).", o.Room)
		return out
	}
	if first && p.HasStatus(xmpp.StatusNickAssigned) && o.try < len(o.candidates) && o.nick != o.candidates[o.try] {
		out.Notice = fmt.Sprintf("%s gave you the nick %q.", o.Room, o.nick)
	}
	if o.statusDue {
		o.statusDue = false
		out.Send = append(out.Send, o.status().Send...)
	}
	for _, h := range o.queue {
		out.Send = append(out.Send, h.m)
	}
	o.queue = nil
	return out
}

// removed handles our own unavailable presence: a nick change, a kick or
// ban, or a removal by the service.
func (o *Occupant) removed(p *xmpp.Presence) Outcome {
	item := firstItem(p.MUCUser)
	by := ""
	if item.Actor != nil && item.Actor.Nick != "" {
		by = " by " + item.Actor.Nick
	}
	reason := ""
	if item.Reason != "" {
		reason = ": " + item.Reason
	}
	switch {
	case p.HasStatus(xmpp.StatusNewNick):
		// The available presence with the new nick follows.
		if item.Nick != "" {
			o.nick = item.Nick
		}
		return Outcome{}
	case p.HasStatus(xmpp.StatusKicked):
		o.state, o.queue = Out, nil
		return Outcome{Notice: fmt.Sprintf("You were kicked from %s%s%s. Join this room again to go back.", o.Room, by, reason),
			Removed: "Kicked from the XMPP room" + by + reason}
	case p.HasStatus(xmpp.StatusBanned):
		o.state, o.queue = Out, nil
		return Outcome{Notice: fmt.Sprintf("You were banned from %s%s%s.", o.Room, by, reason),
			Removed: "Banned from the XMPP room" + by + reason}
	case p.HasStatus(321), p.HasStatus(322):
		o.state, o.queue = Out, nil
		return Outcome{Notice: fmt.Sprintf("You were removed from %s: it is members-only now and you are not a member.", o.Room),
			Removed: "Not a member of the XMPP room"}
	case p.MUCUser != nil && p.MUCUser.Destroy != nil:
		o.state, o.queue = Out, nil
		return Outcome{Notice: fmt.Sprintf("%s was destroyed%s.", o.Room, reason), Removed: "The XMPP room was destroyed" + reason}
	default:
		// The service shut down (332), an error in transit (333), or a
		// removal it did not explain: rejoin.
		o.state = Lost
		return Outcome{}
	}
}

// maxRejoinRefusals is how many refusals of a rejoin are tried again
// before the occupant is out.
const maxRejoinRefusals = 3

// unreachable reports whether an error says that the room's server could
// not be reached (RFC 6120 §8.3.3.15-16): it says nothing of the room, and
// passes.
func unreachable(e *stanza.Error) bool {
	return e != nil && (e.Condition == stanza.RemoteServerNotFound || e.Condition == stanza.RemoteServerTimeout)
}

// errorText is the error's text in no language or, failing that, any.
func errorText(e *stanza.Error) string {
	if t := e.Text[""]; t != "" {
		return t
	}
	if keys := slices.Sorted(maps.Keys(e.Text)); len(keys) > 0 {
		return e.Text[keys[0]]
	}
	return ""
}
