package portal

import (
	"context"
	"encoding/xml"
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
	name := p.info.Name
	if name == "" {
		name = p.Alias.String()
	}
	moderation := "muc_unmoderated"
	if p.moderated() {
		moderation = "muc_moderated"
	}
	return &xmpp.DiscoInfo{
		Identities: []xmpp.DiscoIdentity{{Category: "conference", Type: "text", Name: name}},
		Features: xmpp.Features(xmpp.NSMUC, xmpp.NSDiscoInfo, xmpp.NSDiscoItems, xmpp.NSPing, xmpp.NSStanzaID,
			xmpp.NSOccupantID, "muc_public", "muc_open", "muc_persistent", "muc_nonanonymous", moderation, "muc_unsecured"),
		Forms: []xmpp.DataForm{{Type: "result", Fields: []xmpp.FormField{
			{Var: "FORM_TYPE", Type: "hidden", Values: []string{"http://jabber.org/protocol/muc#roominfo"}},
			{Var: "muc#roominfo_description", Label: "Description", Values: []string{p.info.Topic}},
			{Var: "muc#roominfo_subject", Label: "Subject", Values: []string{p.subject()}},
			{Var: "muc#roominfo_occupants", Label: "Number of occupants",
				Values: []string{strconv.Itoa(len(p.roster.members) + len(p.occupants))}},
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
