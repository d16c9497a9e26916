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
	return &xmpp.DiscoInfo{
		Identities: []xmpp.DiscoIdentity{{Category: "conference", Type: "text", Name: name}},
		Features: xmpp.Features(xmpp.NSMUC, xmpp.NSDiscoInfo, xmpp.NSDiscoItems, xmpp.NSPing, xmpp.NSStanzaID,
			"muc_public", "muc_open", "muc_persistent", "muc_nonanonymous", "muc_unmoderated", "muc_unsecured"),
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
// (XEP-0199), and removes the sessions whose client is gone: while the link
// was down, their leave may have been lost.
func (p *Portal) checkOccupants(ctx context.Context) {
	type result struct {
		occ     *occupant
		session jid.JID
	}
	var (
		mu   sync.Mutex
		gone []result
		wg   sync.WaitGroup
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
				if serr, ok := err.(stanza.Error); ok && sessionGone(&serr) {
					mu.Lock()
					gone = append(gone, result{o, s})
					mu.Unlock()
				}
			}()
		}
	}
	wg.Wait()
	for _, g := range gone {
		p.log.Info().Stringer("jid", g.session).Msg("Removing XMPP session that is gone")
		p.removeSession(ctx, g.occ, g.session, false, "The XMPP client went away")
	}
}

type pingBody struct {
	XMLName xml.Name `xml:"urn:xmpp:ping ping"`
}
