package msgconv

import (
	"context"
	"encoding/xml"
	"strings"
	"testing"
)

func TestStylingToHTML(t *testing.T) {
	for _, tc := range []struct {
		name, in, want string
		styled         bool
	}{
		{"plain", "hello world", "hello world", false},
		{"plain newlines", "a\nb", "a<br>b", false},
		{"strong", "a *b* c", "a <strong>b</strong> c", true},
		{"emph strike code", "_i_ ~s~ `c`", "<em>i</em> <del>s</del> <code>c</code>", true},
		{"nested", "*bold _both_*", "<strong>bold </strong><strong><em>both</em></strong>", true},
		{"unclosed", "*not bold", "*not bold", false},
		{"space after marker", "* not bold *", "* not bold *", false},
		{"markup in code", "`<b>*x*</b>`", "<code>&lt;b&gt;*x*&lt;/b&gt;</code>", true},
		{"html injection", "<script>alert(1)</script> & <img src=x onerror=y>", "&lt;script&gt;alert(1)&lt;/script&gt; &amp; &lt;img src=x onerror=y&gt;", false},
		{"quote", "> quoted\nreply", "<blockquote>quoted</blockquote>reply", true},
		{"nested quote", "> > deep\n> shallow", "<blockquote><blockquote>deep</blockquote>shallow</blockquote>", true},
		{"pre block", "```go\nx := *y*\n<tag>\n```\nafter", `<pre><code class="language-go">x := *y*` + "\n" + `&lt;tag&gt;</code></pre>after`, true},
		{"unclosed pre", "```\ncode", "<pre><code>code</code></pre>", true},
		{"pre language injection", "```x\" onclick=\"y\na\n```", "<pre><code>a</code></pre>", true},
		{"span does not cross lines", "*a\nb*", "*a<br>b*", false},
		// Bare URLs become links. A link alone does not count as styling:
		// the message then stays plain text, which Matrix clients link.
		{"link in styled text", "*see* https://example.org/a?b=1&c=2.", `<strong>see</strong> <a href="https://example.org/a?b=1&amp;c=2">https://example.org/a?b=1&amp;c=2</a>.`, true},
		{"link in parentheses", "_x_ (https://example.org/wiki/A_(b))", `<em>x</em> (<a href="https://example.org/wiki/A_(b)">https://example.org/wiki/A_(b)</a>)`, true},
		{"xmpp and mailto", "*a* xmpp:%23lobby%23hs@c.test?join, mailto:x@y.test", `<strong>a</strong> <a href="xmpp:%23lobby%23hs@c.test?join">xmpp:%23lobby%23hs@c.test?join</a>, <a href="mailto:x@y.test">mailto:x@y.test</a>`, true},
		{"no link in code", "*a* `https://example.org`", "<strong>a</strong> <code>https://example.org</code>", true},
		{"no script scheme", "*a* javascript:alert(1)", "<strong>a</strong> javascript:alert(1)", true},
		{"quote breaks out", "*a* https://x.test/\"><b>", `<strong>a</strong> <a href="https://x.test/">https://x.test/</a>&#34;&gt;&lt;b&gt;`, true},
		{"plain link only", "see https://example.org", `see <a href="https://example.org">https://example.org</a>`, false},
		{"a scheme alone", "*a* http:// mailto: xmpp:", "<strong>a</strong> http:// mailto: xmpp:", true},
	} {
		got, styled := StylingToHTML(tc.in)
		if got != tc.want || styled != tc.styled {
			t.Errorf("%s: StylingToHTML(%q) = %q, %v; want %q, %v", tc.name, tc.in, got, styled, tc.want, tc.styled)
		}
	}
}

func TestHTMLToStyling(t *testing.T) {
	pill := func(id, name string) string {
		if id == "@mary:hs.test" {
			return "Mary Q"
		}
		return name
	}
	for _, tc := range []struct{ name, in, want string }{
		{"bold italic strike", "<b>b</b> <em>i</em> <del>s</del>", "*b* _i_ ~s~"},
		{"whitespace around", "x <strong>bold</strong> y", "x *bold* y"},
		{"empty bold", "a<b></b>b", "ab"},
		{"code", "<code>x*y</code>", "`x*y`"},
		{"code block", "<pre><code class=\"language-go\">a\nb\n</code></pre>", "```go\na\nb\n```"},
		{"quote", "<blockquote>hi<br>there</blockquote>ok", "> hi\n> there\nok"},
		{"list", "<ul><li>one</li><li>two</li></ul>", "* one\n* two"},
		{"link", `<a href="https://example.org">site</a>`, "site (https://example.org)"},
		{"bare link", `<a href="https://example.org">https://example.org</a>`, "https://example.org"},
		{"pill", `hi <a href="https://matrix.to/#/@mary:hs.test">Mary</a>!`, "hi Mary Q!"},
		{"pill unknown", `<a href="https://matrix.to/#/@x:hs.test">X</a>`, "X"},
		{"entities", "a &lt;b&gt; &amp; c", "a <b> & c"},
		{"script is text", "<script>bad()</script>ok", "bad()ok"},
		{"spoiler", `<span data-mx-spoiler="plot">twist</span>`, "[spoiler: plot]"},
	} {
		if got := HTMLToStyling(context.Background(), tc.in, pill); got != tc.want {
			t.Errorf("%s: HTMLToStyling(%q) = %q; want %q", tc.name, tc.in, got, tc.want)
		}
	}
}

func TestXHTMLToHTML(t *testing.T) {
	for _, tc := range []struct{ name, in, want string }{
		{"basic", `<body xmlns="http://www.w3.org/1999/xhtml"><p><strong>hi</strong> <em>there</em></p></body>`, "<p><strong>hi</strong> <em>there</em></p>"},
		{"styles dropped", `<body><span style="color:red">red</span><br/>x</body>`, "red<br>x"},
		{"script and events", `<body><script>evil()</script><b onclick="x">b</b></body>`, "evil()<strong>b</strong>"},
		{"links", `<body><a href="javascript:alert(1)">js</a> <a href='https://ok.example/?a=1&amp;b=2'>ok</a></body>`, `<a>js</a> <a href="https://ok.example/?a=1&amp;b=2">ok</a>`},
		{"text escaped", `<body>&lt;img src=x&gt;</body>`, "&lt;img src=x&gt;"},
	} {
		got, err := XHTMLToHTML(xml.NewDecoder(strings.NewReader(tc.in)))
		if err != nil || got != tc.want {
			t.Errorf("%s: XHTMLToHTML = %q, %v; want %q", tc.name, got, err, tc.want)
		}
	}
}

func FuzzStylingToHTML(f *testing.F) {
	for _, s := range []string{"*a*", "> q\n```\nx\n```", "<b>&", "_*~`"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out, _ := StylingToHTML(s)
		// Whatever the input, no tag but the ones the converter writes.
		for _, frag := range strings.Split(out, "<")[1:] {
			tag := strings.TrimPrefix(strings.SplitN(frag, ">", 2)[0], "/")
			switch name, attrs, _ := strings.Cut(tag, " "); name {
			case "a":
				// A link to a URL the converter found: its href holds no
				// quote and starts with an allowed scheme.
				href, ok := strings.CutPrefix(attrs, `href="`)
				href, closed := strings.CutSuffix(href, `"`)
				if loc := bareURL.FindStringIndex(href); ok && closed && !strings.Contains(href, `"`) && loc != nil && loc[0] == 0 {
					break
				}
				if strings.HasPrefix(frag, "/a>") {
					break
				}
				t.Fatalf("StylingToHTML(%q) wrote a link that is not a URL <%s>: %q", s, tag, out)
			case "strong", "em", "del", "code", "pre", "blockquote", "br":
			default:
				t.Fatalf("StylingToHTML(%q) wrote a foreign tag <%s>: %q", s, tag, out)
			}
		}
	})
}
