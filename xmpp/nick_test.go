package xmpp

import (
	"slices"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestStrictNick(t *testing.T) {
	for in, want := range map[string]string{
		"Mary":                    "Mary",
		"  Mary   Major \t":       "Mary Major",
		"Mary\u00a0Major":         "Mary Major", // no-break space made plain
		"Ｍａｒｙ":                    "Mary",       // compatibility forms folded
		"Mary 🦊":                  "Mary",       // emoji newer than stringprep's Unicode
		"Ma\u200bry":              "Mary",       // zero-width space (format character)
		"Jürgen Groß":             "Jürgen Groß",
		"\u202eevil":              "evil", // bidi override
		"\ue000private":           "private",
		"مريم":                    "مريم",
		"مريم Mary":               "", // mixed directions break the Bidi Rule
		"🦊":                       "",
		"":                        "",
		strings.Repeat("x", 100):  strings.Repeat("x", MaxNickRunes),
		"bell\x07":                "bell",
		"\ufdd0nonchar\U0001fffe": "nonchar",
	} {
		if got := StrictNick(in); got != want {
			t.Errorf("StrictNick(%q) = %q; want %q", in, got, want)
		}
	}
}

func TestNickCandidates(t *testing.T) {
	for _, tc := range []struct {
		display, local string
		want           []string
	}{
		{"Mary", "mary", []string{"Mary", "Mary (Matrix)"}},
		{"Mary Major", "mary", []string{"Mary Major", "Mary Major (Matrix)", "mary"}},
		{"🦊", "fox", []string{"fox"}},
		{"", "fox", []string{"fox"}},
		{strings.Repeat("y", 80), "y", []string{strings.Repeat("y", 64), strings.Repeat("y", 64-len(NickSuffix)) + NickSuffix, "y"}},
	} {
		got := NickCandidates(tc.display, tc.local)
		if !slices.Equal(got, tc.want) {
			t.Errorf("NickCandidates(%q, %q) = %q; want %q", tc.display, tc.local, got, tc.want)
		}
		for _, n := range got {
			if utf8.RuneCountInString(n) > MaxNickRunes {
				t.Errorf("candidate %q is longer than %d", n, MaxNickRunes)
			}
		}
	}
}

func FuzzStrictNick(f *testing.F) {
	for _, s := range []string{"Mary", "مريم Mary", "Ｍａｒｙ 🦊", "\u202e", " a  b "} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n := StrictNick(s)
		if n == "" {
			return
		}
		if StrictNick(n) != n {
			t.Fatalf("StrictNick(%q) = %q is not stable: %q", s, n, StrictNick(n))
		}
		if !utf8.ValidString(n) || utf8.RuneCountInString(n) > MaxNickRunes || n != strings.TrimSpace(n) {
			t.Fatalf("StrictNick(%q) = %q", s, n)
		}
	})
}
