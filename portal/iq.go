package portal

import (
	"context"

	"encoding/xml"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
	"strconv"
	"sync"
	"time"

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
	case payload.Space == xmpp.NSDiscoItems && iq.Type == xmpp.TypeGet && !toOccupant:
		// Occupants are not listed: XEP-0045 §6.5 leaves it to the room.
		p.deps.XMPP.Reply(ctx, iq, &xmpp.DiscoItems{}, nil)
	default:
		p.deps.XMPP.Reply(ctx, iq, nil, xmpp.StanzaError(stanza.ServiceUnavailable, ""))
	}
}

// discoInfo describes the room (XEP-0045 §6.4).
func (p *Portal) discoInfo() *xmpp.DiscoInfo {
	return RoomDiscoInfo(RoomSummary{
		Name:      p.info.Name,
		Alias:     p.Alias,
		Topic:     p.info.Topic,
		Subject:   p.subject(),
		Occupants: len(p.roster.members) + len(p.occupants),
		Listed:    p.listed,
		Open:      p.info.JoinRule == event.JoinRulePublic,
		Moderated: p.moderated(),
		Avatar:    p.deps.Avatars.vcardUpdate(p.info.Avatar),
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
	}
	if r.Avatar != nil && r.Avatar.Photo != nil && *r.Avatar.Photo != "" {
		// XEP-0486: clients fetch the room's vCard when the hash changes.
		fields = append(fields, xmpp.FormField{Var: "muc#roominfo_avatarhash", Type: "text-multi", Values: []string{*r.Avatar.Photo}})
	}
	return &xmpp.DiscoInfo{
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
}

// maxPingMisses is how many liveness pings in a row a session may leave
// unanswered before it counts as gone.
const maxPingMisses = 3

// pingOutcome is what a liveness ping found out about a session.
type pingOutcome int

const (
	pingAnswered pingOutcome = iota
	pingGone                 // an error saying the session no longer exists
	pingSilent               // no answer in time, or an error that proves nothing
)

// pingSessions pings sessions (XEP-0199) in parallel and returns what each
// answer says. A bounced ping from the user's server says service-unavailable
// exactly like a client that does not know pings; every client this bridge
// is for answers pings, so that counts as gone.
func (p *Portal) pingSessions(ctx context.Context, sessions map[string]*occupant, timeout time.Duration) map[string]pingOutcome {
	var (
		mu  sync.Mutex
		out = map[string]pingOutcome{}
		wg  sync.WaitGroup
	)
	for full, o := range sessions {
		s := o.sessions[full]
		wg.Add(1)
		go func() {
			defer wg.Done()
			pctx, cancel := context.WithTimeout(ctx, timeout)
			defer cancel()
			_, err := p.deps.XMPP.SendIQ(pctx, &xmpp.IQ{Type: xmpp.TypeGet, From: xmpp.A(p.occupantJID(o.nick)), To: xmpp.A(s),
				Body: pingBody{}})
			outcome := pingSilent
			if serr, ok := err.(stanza.Error); ok && sessionGone(&serr) {
				outcome = pingGone
			} else if err == nil {
				outcome = pingAnswered
			}
			mu.Lock()
			out[full] = outcome
			mu.Unlock()
		}()
	}
	wg.Wait()
	return out
}

// checkOccupants pings every session after the component link came back.
// Sessions whose client is gone are removed: while the link was down, their
// leave may have been lost. The others get their self-presence again, so
// that a client that took bounced stanzas for a lost room sees that it is
// still in.
func (p *Portal) checkOccupants(ctx context.Context) {
	all := map[string]*occupant{}
	for _, o := range p.occupants {
		for full := range o.sessions {
			all[full] = o
		}
	}
	for full, outcome := range p.pingSessions(ctx, all, 10*time.Second) {
		o := all[full]
		s, still := o.sessions[full]
		switch {
		case !still:
		case outcome == pingGone:
			p.log.Info().Stringer("jid", s).Msg("Removing XMPP session that is gone")
			p.removeSession(ctx, o, s, false, "The XMPP client went away")
		case outcome == pingAnswered:
			p.touch(s)
			p.send(ctx, p.availablePresence(o.puppet, o.nick, s, p.occupantItem(o, s),
				xmpp.StatusSelf, xmpp.StatusNonAnonymous, xmpp.StatusLogged))
		}
	}
}

// CheckQuiet asks a portal to ping the sessions it has not heard from for
// a while, to find those that vanished without leaving (their server went
// away, or their leave was lost).
type CheckQuiet struct{}

// checkQuiet pings sessions quiet for longer than the check interval. A
// session is removed when the answer says it is gone, or after
// maxPingMisses checks in a row without an answer.
func (p *Portal) checkQuiet(ctx context.Context) {
	interval := p.deps.OccupantCheckInterval
	if interval <= 0 {
		return
	}
	quiet := map[string]*occupant{}
	for _, o := range p.occupants {
		for full := range o.sessions {
			if time.Since(p.lastSeen[full]) >= interval {
				quiet[full] = o
			}
		}
	}
	if len(quiet) == 0 {
		return
	}
	for full, outcome := range p.pingSessions(ctx, quiet, min(10*time.Second, interval)) {
		o := quiet[full]
		s, still := o.sessions[full]
		if !still {
			continue
		}
		switch outcome {
		case pingAnswered:
			p.touch(s)
		case pingGone:
			p.log.Info().Stringer("jid", s).Msg("Removing XMPP session that is gone")
			p.removeSession(ctx, o, s, false, "The XMPP client went away")
		case pingSilent:
			p.misses[full]++
			if p.misses[full] >= maxPingMisses {
				p.log.Info().Stringer("jid", s).Int("misses", p.misses[full]).Msg("Removing XMPP session that stopped answering")
				p.removeSession(ctx, o, s, false, "The XMPP client stopped answering")
			}
		}
	}
}

// touch notes that a session was heard from.
func (p *Portal) touch(session jid.JID) {
	p.lastSeen[session.String()] = time.Now()
	delete(p.misses, session.String())
}

type pingBody struct {
	XMLName xml.Name `xml:"urn:xmpp:ping ping"`
}
