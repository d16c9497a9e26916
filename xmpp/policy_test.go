package xmpp

import "testing"

func TestDomainPolicy(t *testing.T) {
	for _, tc := range []struct {
		p      DomainPolicy
		domain string
		want   bool
	}{
		{DomainPolicy{}, "any.example", true},
		{DomainPolicy{Denied: []string{"bad.example"}}, "bad.example", false},
		{DomainPolicy{Denied: []string{"bad.example"}}, "BAD.example.", false},
		{DomainPolicy{Denied: []string{"*.bad.example"}}, "x.bad.example", false},
		{DomainPolicy{Denied: []string{"*.bad.example"}}, "bad.example", true},
		{DomainPolicy{Denied: []string{"*.bad.example"}}, "notbad.example", true},
		{DomainPolicy{Allowed: []string{"good.example"}}, "good.example", true},
		{DomainPolicy{Allowed: []string{"good.example"}}, "other.example", false},
		{DomainPolicy{Allowed: []string{"*.gov.example"}}, "police.gov.example", true},
		{DomainPolicy{Allowed: []string{"*.example"}, Denied: []string{"evil.example"}}, "evil.example", false},
	} {
		if got := tc.p.Allows(tc.domain); got != tc.want {
			t.Errorf("%+v.Allows(%q) = %v; want %v", tc.p, tc.domain, got, tc.want)
		}
	}
	base := DomainPolicy{Allowed: []string{"a.example"}, Denied: []string{"d.example"}}
	room := base.Override([]string{"b.example"}, []string{"e.example"})
	if room.Allows("a.example") || !room.Allows("b.example") || room.Allows("d.example") || room.Allows("e.example") {
		t.Errorf("room override %+v", room)
	}
	if base.Override(nil, nil).Allows("b.example") {
		t.Error("an empty room list replaced the global allow list")
	}
	for _, ok := range []string{"example.org", "*.example.org", "xn--bcher-kva.example", "bücher.example", "localhost", "a-b.example"} {
		if err := CheckDomainPattern(ok); err != nil {
			t.Errorf("CheckDomainPattern(%q) = %v", ok, err)
		}
	}
	for _, bad := range []string{"", "*", "*.", "a@b", "a/b", "*.*.x", "x.*.y", "bad..domain", ".example", "example.", "-a.example", "a-.example", "a_b.example", "a b"} {
		if CheckDomainPattern(bad) == nil {
			t.Errorf("CheckDomainPattern(%q) accepted", bad)
		}
	}
}
