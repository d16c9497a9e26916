package xmpp

import "strings"

// Features of MUC rooms (XEP-0045 §15.2.3, XEP-0359, XEP-0421).
const (
	FeatureNonAnonymous = "muc_nonanonymous"
	FeatureMembersOnly  = "muc_membersonly"
	FeaturePassword     = "muc_passwordprotected"
	FeatureModerated    = "muc_moderated"
	FeaturePublic       = "muc_public"
	FeatureStableID     = "http://jabber.org/protocol/muc#stable_id"
	FeatureSelfPing     = "http://jabber.org/protocol/muc#self-ping-optimization"
)

// MUCInfo is what a room's disco#info says about it (XEP-0045 §6.4).
type MUCInfo struct {
	// IsMUC is set when the room advertises the MUC protocol: anything
	// else is not joined as a room.
	IsMUC bool
	// Name is the room's name, from its identity or room info form.
	Name string
	// Description is the room's description from its room info form.
	Description string
	// NonAnonymous: every occupant sees every occupant's real JID.
	NonAnonymous bool
	MembersOnly  bool
	Password     bool
	Moderated    bool
	Public       bool
	// StanzaIDs: the room stamps messages with its stanza-id (XEP-0359);
	// only then is a stanza-id "by" the room to be trusted.
	StanzaIDs bool
	// OccupantIDs: the room gives occupants XEP-0421 ids; only then is an
	// occupant-id to be trusted.
	OccupantIDs bool
	// Archive: the room keeps a message archive (XEP-0313).
	Archive bool
}

// ReadMUCInfo reads a room's disco#info result.
func ReadMUCInfo(info *DiscoInfo) MUCInfo {
	var m MUCInfo
	for _, id := range info.Identities {
		if id.Category == "conference" && id.Name != "" && m.Name == "" {
			m.Name = id.Name
		}
	}
	for _, f := range info.Features {
		switch f.Var {
		case NSMUC:
			m.IsMUC = true
		case FeatureNonAnonymous:
			m.NonAnonymous = true
		case FeatureMembersOnly:
			m.MembersOnly = true
		case FeaturePassword:
			m.Password = true
		case FeatureModerated:
			m.Moderated = true
		case FeaturePublic:
			m.Public = true
		case NSStanzaID:
			m.StanzaIDs = true
		case NSOccupantID:
			m.OccupantIDs = true
		case NSMAM:
			m.Archive = true
		}
	}
	for _, form := range info.Forms {
		for _, field := range form.Fields {
			if len(field.Values) == 0 {
				continue
			}
			switch field.Var {
			case "muc#roomconfig_roomname":
				if v := strings.TrimSpace(field.Values[0]); v != "" {
					m.Name = v
				}
			case "muc#roominfo_description":
				m.Description = strings.TrimSpace(field.Values[0])
			}
		}
	}
	return m
}
