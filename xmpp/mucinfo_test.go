package xmpp

import "testing"

func TestReadMUCInfo(t *testing.T) {
	info := &DiscoInfo{
		Identities: []DiscoIdentity{{Category: "conference", Type: "text", Name: "team"}},
		Features: Features(NSMUC, FeatureNonAnonymous, FeatureMembersOnly, NSStanzaID, NSOccupantID, NSMAM, FeaturePassword,
			"muc_open", "muc_unmoderated"),
		Forms: []DataForm{{Type: "result", Fields: []FormField{
			{Var: "FORM_TYPE", Type: "hidden", Values: []string{"http://jabber.org/protocol/muc#roominfo"}},
			{Var: "muc#roomconfig_roomname", Values: []string{" Team room "}},
			{Var: "muc#roominfo_description", Values: []string{"Where we meet"}},
		}}},
	}
	got := ReadMUCInfo(info)
	want := MUCInfo{IsMUC: true, Name: "Team room", Description: "Where we meet", NonAnonymous: true, MembersOnly: true,
		Password: true, StanzaIDs: true, OccupantIDs: true, Archive: true}
	if got != want {
		t.Errorf("ReadMUCInfo = %+v; want %+v", got, want)
	}
	// An account or a service is no room; a room without a form is named
	// by its identity.
	if got := ReadMUCInfo(&DiscoInfo{Identities: []DiscoIdentity{{Category: "account", Type: "registered"}}}); got.IsMUC {
		t.Errorf("an account reads as a MUC: %+v", got)
	}
	if got := ReadMUCInfo(&DiscoInfo{Identities: []DiscoIdentity{{Category: "conference", Name: "lobby"}},
		Features: Features(NSMUC)}); got.Name != "lobby" || got.NonAnonymous || got.StanzaIDs {
		t.Errorf("a plain room reads as %+v", got)
	}
}
