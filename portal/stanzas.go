package portal

import (
	"context"

	"maunium.net/go/mautrix/id"
	"mellium.im/xmpp/jid"

	"github.com/mxpp/mxpp/xmpp"
)

// occupantJID returns room@component/nick.
func (p *Portal) occupantJID(nick string) jid.JID {
	j, err := p.roomJID.WithResource(nick)
	if err != nil {
		// Nicks are checked when they are handed out; this is a bug.
		p.log.Error().Err(err).Str("nick", nick).Msg("Nick is not a valid resourcepart")
		return p.roomJID
	}
	return j
}

// contactJID returns the JID that stands for a Matrix user on the component.
func (p *Portal) contactJID(userID id.UserID) jid.JID {
	local, server, err := userID.Parse()
	if err != nil {
		return jid.JID{}
	}
	j, err := p.deps.Scheme.UserJID(local, server)
	if err != nil {
		return jid.JID{}
	}
	return j
}

// The room is non-anonymous: Matrix members see every XMPP user's address in
// the puppet's ID, so XMPP occupants see real JIDs too.
func (p *Portal) memberItem(m *member) xmpp.MUCItem {
	st := p.standingOf(m.userID)
	return xmpp.MUCItem{Affiliation: st.affiliation, Role: st.role, JID: xmpp.A(p.contactJID(m.userID))}
}

func (p *Portal) occupantItem(o *occupant, session jid.JID) xmpp.MUCItem {
	if session.Equal(jid.JID{}) {
		session = o.anySession()
	}
	st := p.standingOf(o.puppet)
	return xmpp.MUCItem{Affiliation: st.affiliation, Role: st.role, JID: xmpp.A(session)}
}

func (o *occupant) anySession() jid.JID {
	if len(o.sessions) > 0 {
		return o.sessions[0].jid
	}
	return o.bare
}

// availablePresence is the presence of the occupant nick, who is userID on
// Matrix (empty if unknown), with item.
func (p *Portal) availablePresence(userID id.UserID, nick string, to jid.JID, item xmpp.MUCItem, status ...int) *xmpp.Presence {
	pres := &xmpp.Presence{
		From:    xmpp.A(p.occupantJID(nick)),
		To:      xmpp.A(to),
		MUCUser: &xmpp.MUCUser{Items: []xmpp.MUCItem{item}, Status: xmpp.Statuses(status...)},
	}
	if userID != "" {
		pres.OccupantID = p.occupantID(userID)
		if m := p.info.Members[userID]; p.roster.members[userID] != nil {
			pres.VCardUpdate = p.deps.Avatars.vcardUpdate(m.AvatarURL)
			if p.deps.MemberPresence != nil {
				p.deps.MemberPresence(userID, pres)
			}
		}
	}
	return pres
}

// unavailablePresence tells to that nick left, with role none.
func (p *Portal) unavailablePresence(userID id.UserID, nick string, to jid.JID, item xmpp.MUCItem, status ...int) *xmpp.Presence {
	item.Role = xmpp.RoleNone
	pres := p.availablePresence(userID, nick, to, item, status...)
	pres.Type = xmpp.TypeUnavailable
	return pres
}

// sessions returns the full JIDs of every joined session.
func (p *Portal) sessions() []jid.JID {
	var out []jid.JID
	for _, o := range p.occupants {
		for _, s := range o.sessions {
			out = append(out, s.jid)
		}
	}
	return out
}

// broadcast sends build(session) to every joined session except those of
// the occupant skip (may be nil).
func (p *Portal) broadcast(ctx context.Context, skip *occupant, build func(to jid.JID) any) {
	for _, o := range p.occupants {
		if o == skip {
			continue
		}
		for _, s := range o.sessions {
			p.send(ctx, build(s.jid))
		}
	}
}

// subject is what the MUC shows as its subject: the Matrix topic, else the
// room name; and who set it.
func (p *Portal) subject() (string, id.UserID) {
	if p.info.Topic != "" {
		return p.info.Topic, p.info.TopicSetter
	}
	return p.info.Name, p.info.NameSetter
}

// subjectMessage is the subject for one session. It comes from the
// occupant who set it (XEP-0045 §8.1), so that clients show who did, while
// that user is in the room under a nick; from the room itself otherwise.
func (p *Portal) subjectMessage(to jid.JID) *xmpp.Message {
	subject, setter := p.subject()
	msg := &xmpp.Message{Type: xmpp.TypeGroupchat, ID: xmpp.RandomID(), From: xmpp.A(p.roomJID), To: xmpp.A(to), Subject: &subject}
	if nick := p.nickOf(setter); setter != "" && nick != "" {
		msg.From, msg.OccupantID = xmpp.A(p.occupantJID(nick)), p.occupantID(setter)
	}
	return msg
}
