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
	return &xmpp.DiscoInfo{
		Identities: []xmpp.DiscoIdentity{{Category: "conference", Type: "text", Name: name}},
		Features: xmpp.Features(xmpp.NSMUC, xmpp.NSDiscoInfo, xmpp.NSDiscoItems, xmpp.NSPing, xmpp.NSStanzaID,
			xmpp.NSOccupantID,
			pick(r.Listed, "muc_public", "muc_hidden"),
			pick(r.Open, "muc_open", "muc_membersonly"),
			"muc_persistent", "muc_nonanonymous",
			pick(r.Moderated, "muc_moderated", "muc_unmoderated"),
			"muc_unsecured"),
		Forms: []xmpp.DataForm{{Type: "result", Fields: []xmpp.FormField{
			{Var: "FORM_TYPE", Type: "hidden", Values: []string{"http://jabber.org/protocol/muc#roominfo"}},
			{Var: "muc#roominfo_description", Label: "Description", Values: []string{r.Topic}},
			{Var: "muc#roominfo_subject", Label: "Subject", Values: []string{r.Subject}},
			{Var: "muc#roominfo_occupants", Label: "Number of occupants", Values: []string{strconv.Itoa(r.Occupants)}},
		}}},
	}
}

// checkOccupants pings every session after the component link came back
// (XEP-0199). Sessions whose client is gone are removed: while the link was
// down, their leave may have been lost. The others get their self-presence
// again, so that a client that took bounced stanzas for a lost room sees
// that it is still in.
func (p *Portal) checkOccupants(ctx context.Context) {
	type result struct {
		occ     *occupant
		session jid.JID
	}
	var (
		mu    sync.Mutex
		gone  []result
		alive []result
		wg    sync.WaitGroup
	)
	for _, o := range p.occupants {
		for _, s := range o.sessions {
			wg.Add(1)
			go func() {
				defer wg.Done()
				pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
				defer cancel()
				_, err := p.deps.XMPP.SendIQ(pctx, &xmpp.IQ{Type: xmpp.TypeGet, From: xmpp.A(p.occupantJID(o.nick)), To: xmpp.A(s),
					Body: pingBody{}})
				mu.Lock()
				defer mu.Unlock()
				if serr, ok := err.(stanza.Error); ok && sessionGone(&serr) {
					gone = append(gone, result{o, s})
				} else if err == nil {
					alive = append(alive, result{o, s})
				}
			}()
		}
	}
	wg.Wait()
	for _, g := range gone {
		p.log.Info().Stringer("jid", g.session).Msg("Removing XMPP session that is gone")
		p.removeSession(ctx, g.occ, g.session, false, "The XMPP client went away")
	}
	for _, a := range alive {
		if _, still := p.session(a.session); still {
			p.send(ctx, p.availablePresence(a.occ.puppet, a.occ.nick, a.session, p.occupantItem(a.occ, a.session),
				xmpp.StatusSelf, xmpp.StatusNonAnonymous, xmpp.StatusLogged))
		}
	}
}

type pingBody struct {
	XMLName xml.Name `xml:"urn:xmpp:ping ping"`
}
