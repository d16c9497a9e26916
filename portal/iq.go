package portal

import (
	"context"
	"encoding/xml"
	"errors"
	"strconv"
	"time"

	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"github.com/mxpp/mxpp/xmpp"
)

// handleXMPPIQ answers IQs to the room and its occupants.
func (p *Portal) handleXMPPIQ(ctx context.Context, iq *xmpp.IQ) {
	payload := iq.Payload.XMLName
	toOccupant := iq.To.Resourcepart() != ""
	switch {
	case payload.Space == xmpp.NSPing && iq.Type == xmpp.TypeGet:
		// XEP-0199 to the room, or XEP-0410 self-ping to an occupant: a
		// joined sender gets a result, anyone else not-acceptable.
		if _, joined := p.session(iq.From.JID); toOccupant && !joined {
			p.deps.XMPP.Reply(ctx, iq, nil, xmpp.StanzaError(stanza.NotAcceptable, "You are not in this room"))
			return
		}
		p.deps.XMPP.Reply(ctx, iq, nil, nil)
	case payload.Space == xmpp.NSDiscoInfo && iq.Type == xmpp.TypeGet && !toOccupant:
		p.deps.XMPP.Reply(ctx, iq, p.discoInfo(), nil)
	case payload.Space == xmpp.NSModerate && iq.Type == xmpp.TypeSet && !toOccupant:
		p.handleModerate(ctx, iq)
	case payload.Space == xmpp.NSVCard:
		p.handleVCard(ctx, iq)
	case payload.Space == xmpp.NSMUCAdmin && !toOccupant:
		p.handleAdmin(ctx, iq)
	case payload.Space == xmpp.NSMAM && payload.Local == "query" && iq.Type == xmpp.TypeSet && !toOccupant:
		p.handleMAMQuery(ctx, iq)
	case payload.Space == xmpp.NSDiscoItems && iq.Type == xmpp.TypeGet && !toOccupant:
		// Occupants are not listed: XEP-0045 §6.5 leaves it to the room.
		p.deps.XMPP.Reply(ctx, iq, &xmpp.DiscoItems{}, nil)
	default:
		p.deps.XMPP.Reply(ctx, iq, nil, xmpp.StanzaError(stanza.ServiceUnavailable, ""))
	}
}

// discoInfo describes the room (XEP-0045 §6.4).
func (p *Portal) discoInfo() *xmpp.DiscoInfo {
	subject, _ := p.subject()
	return RoomDiscoInfo(RoomSummary{
		Name:      p.info.Name,
		Alias:     p.Alias,
		Topic:     p.info.Topic,
		Subject:   subject,
		Occupants: len(p.roster.members) + len(p.occupants),
		Listed:    p.listed,
		Open:      p.info.JoinRule == event.JoinRulePublic,
		Moderated: p.moderated(),
		Avatar:    p.deps.Avatars.vcardUpdate(p.info.Avatar),
		Archive:   p.historyShared(),
		PMOff:     p.settings != nil && p.settings.PMOff,
	})
}

// RoomSummary is what disco#info tells about a room.
type RoomSummary struct {
	Name, Topic, Subject string
	Alias                id.RoomAlias
	Occupants            int
	// Listed is whether the room is in the homeserver's room directory.
	Listed bool
	// Open is whether anyone may join, rather than the invited.
	Open      bool
	Moderated bool
	// Avatar, if set, holds the XEP-0153 hash of the room's avatar.
	Avatar *xmpp.VCardUpdate
	// Archive is whether the room's past messages can be queried (XEP-0313).
	Archive bool
	// PMOff is whether occupants' private messages are turned off.
	PMOff bool
}

// RoomDiscoInfo is the disco#info of a room: its identity, the MUC features
// that describe it, and the muc#roominfo form (XEP-0045 §6.4, §15.5.4).
func RoomDiscoInfo(r RoomSummary) *xmpp.DiscoInfo {
	name := r.Name
	if name == "" {
		name = r.Alias.String()
	}
	pick := func(cond bool, yes, no string) string {
		if cond {
			return yes
		}
		return no
	}
	fields := []xmpp.FormField{
		{Var: "FORM_TYPE", Type: "hidden", Values: []string{"http://jabber.org/protocol/muc#roominfo"}},
		{Var: "muc#roominfo_description", Label: "Description", Values: []string{r.Topic}},
		{Var: "muc#roominfo_subject", Label: "Subject", Values: []string{r.Subject}},
		{Var: "muc#roominfo_occupants", Label: "Number of occupants", Values: []string{strconv.Itoa(r.Occupants)}},
		// Who may send private messages (XEP-0045 §10.2's room
		// configuration field, shown here as the room is configured on
		// Matrix): anyone, or none.
		{Var: "muc#roomconfig_allowpm", Label: "Allow private messages", Values: []string{pick(r.PMOff, "none", "anyone")}},
	}
	if r.Avatar != nil && r.Avatar.Photo != nil && *r.Avatar.Photo != "" {
		// XEP-0486: clients fetch the room's vCard when the hash changes.
		fields = append(fields, xmpp.FormField{Var: "muc#roominfo_avatarhash", Type: "text-multi", Values: []string{*r.Avatar.Photo}})
	}
	info := &xmpp.DiscoInfo{
		Identities: []xmpp.DiscoIdentity{{Category: "conference", Type: "text", Name: name}},
		Features: xmpp.Features(xmpp.NSMUC, xmpp.NSDiscoInfo, xmpp.NSDiscoItems, xmpp.NSPing, xmpp.NSStanzaID,
			xmpp.NSOccupantID, xmpp.NSVCard, xmpp.NSRetract, xmpp.NSModerate, xmpp.NSReactions,
			xmpp.NSCorrect, xmpp.NSReply, xmpp.NSChatStates, xmpp.NSMarkers,
			pick(r.Listed, "muc_public", "muc_hidden"),
			pick(r.Open, "muc_open", "muc_membersonly"),
			"muc_persistent", "muc_nonanonymous",
			pick(r.Moderated, "muc_moderated", "muc_unmoderated"),
			"muc_unsecured"),
		Forms: []xmpp.DataForm{{Type: "result", Fields: fields}},
	}
	if r.Archive {
		info.Features = append(info.Features, xmpp.Features(xmpp.NSMAM)...)
	}
	return info
}

// maxPingMisses is how many liveness pings in a row a session may leave
// unanswered before it counts as gone.
const maxPingMisses = 3

// pingOutcome is what a liveness ping found out about a session.
type pingOutcome int

const (
	pingAnswered pingOutcome = iota
	pingGone                 // an error saying the session no longer exists
	pingSilent               // sent, but no answer in time
	pingUnknown              // not sent, or an error that proves nothing
)

// pingDone is the answer to one liveness ping, back in the room's loop.
type pingDone struct {
	session   jid.JID // full JID
	outcome   pingOutcome
	reconnect bool // the ping checked occupants after a reconnect
}

// quietPingTimeout is how long a liveness ping of a quiet session may go
// unanswered: generous, because a busy server or client answers late, and
// a late answer must not cost a live session its seat.
func quietPingTimeout(interval time.Duration) time.Duration {
	return min(max(interval, 5*time.Second), 30*time.Second)
}

// startPings pings the sessions due says so of (XEP-0199) beside the
// loop; each answer comes back as a pingDone. A session with a ping still
// out is skipped, except after a reconnect: a ping out on the old link is
// answered by nobody.
//
// A bounced ping from the user's server says service-unavailable exactly
// like a client that does not know pings; every client this bridge is for
// answers pings, so that counts as gone.
func (p *Portal) startPings(due func(*session) bool, timeout time.Duration, reconnect bool) {
	for _, o := range p.occupants {
		for i := range o.sessions {
			s := &o.sessions[i]
			if !due(s) || (s.pinging && !reconnect) {
				continue
			}
			s.pinging = true
			from, to := p.occupantJID(o.nick), s.jid
			go func() {
				ctx, cancel := context.WithTimeout(p.Context(), timeout)
				defer cancel()
				_, err := p.deps.XMPP.SendIQ(ctx, &xmpp.IQ{Type: xmpp.TypeGet, From: xmpp.A(from), To: xmpp.A(to), Body: pingBody{}})
				p.Queue(p.Context(), pingDone{session: to, outcome: pingResult(err), reconnect: reconnect})
			}()
		}
	}
}

// pingResult says what the answer to a ping (or its absence) shows.
func pingResult(err error) pingOutcome {
	var serr stanza.Error
	switch {
	case err == nil:
		return pingAnswered
	case errors.As(err, &serr) && sessionGone(&serr):
		return pingGone
	case errors.Is(err, xmpp.ErrNoReply):
		return pingSilent
	}
	return pingUnknown
}

// checkOccupants pings every session after the component link came back.
// Sessions whose client is gone are removed: while the link was down, their
// leave may have been lost. The others get their self-presence again, so
// that a client that took bounced stanzas for a lost room sees that it is
// still in.
func (p *Portal) checkOccupants() {
	p.startPings(func(*session) bool { return true }, 10*time.Second, true)
}

// CheckQuiet asks a portal to ping the sessions it has not heard from for
// a while, to find those that vanished without leaving (their server went
// away, or their leave was lost).
type CheckQuiet struct{}

// checkQuiet pings sessions quiet for longer than the check interval. A
// session is removed when the answer says it is gone, or after
// maxPingMisses pings in a row without an answer.
func (p *Portal) checkQuiet() {
	interval := p.deps.OccupantCheckInterval
	if interval <= 0 {
		return
	}
	quiet := func(s *session) bool { return time.Since(s.lastSeen) >= interval }
	p.startPings(quiet, quietPingTimeout(interval), false)
}

// handlePingDone acts on the answer to a liveness ping.
func (p *Portal) handlePingDone(ctx context.Context, d pingDone) {
	o, ok := p.session(d.session)
	if !ok {
		return
	}
	sess := o.find(d.session)
	sess.pinging = false
	s := d.session
	switch d.outcome {
	case pingAnswered:
		p.touch(s)
		if d.reconnect {
			p.send(ctx, p.availablePresence(o.puppet, o.nick, s, p.occupantItem(o, s),
				xmpp.StatusSelf, xmpp.StatusNonAnonymous, xmpp.StatusLogged))
		}
	case pingGone:
		p.log.Info().Stringer("jid", s).Msg("Removing XMPP session that is gone")
		p.removeSession(ctx, o, s, false, "The XMPP client went away")
	case pingSilent:
		if d.reconnect {
			return
		}
		sess.misses++
		if sess.misses >= maxPingMisses {
			p.log.Info().Stringer("jid", s).Int("misses", sess.misses).Msg("Removing XMPP session that stopped answering")
			p.removeSession(ctx, o, s, false, "The XMPP client stopped answering")
		}
	}
}

// touch notes that a joined session was heard from.
func (p *Portal) touch(from jid.JID) {
	if o := p.occupants[from.Bare().String()]; o != nil {
		if s := o.find(from); s != nil {
			s.lastSeen, s.misses = time.Now(), 0
		}
	}
}

type pingBody struct {
	XMLName xml.Name `xml:"urn:xmpp:ping ping"`
}
