package msgconv

import (
	"context"
	"encoding/xml"
	"html"
	"io"
	"regexp"
	"strings"
	"unicode"

	"maunium.net/go/mautrix/format"
	"mellium.im/xmpp/styling"
)

// StylingToHTML renders an XMPP body with XEP-0393 message styling as
// Matrix HTML. Every character of the body is escaped, so no markup from
// XMPP reaches Matrix. styled is false when the body has no styling, and
// the HTML then adds nothing to the plain body.
//
// Blocks are parsed here (quotes and preformatted blocks are whole lines);
// spans, which XEP-0393 confines to a line, by mellium's styling decoder.
func StylingToHTML(body string) (out string, styled bool) {
	var b strings.Builder
	styled = renderBlocks(&b, strings.Split(body, "\n"))
	return b.String(), styled
}

func renderBlocks(b *strings.Builder, lines []string) (styled bool) {
	prevText := false
	for i := 0; i < len(lines); {
		line := lines[i]
		switch {
		case strings.HasPrefix(line, ">"):
			var inner []string
			for ; i < len(lines) && strings.HasPrefix(lines[i], ">"); i++ {
				q := strings.TrimPrefix(lines[i], ">")
				inner = append(inner, strings.TrimPrefix(q, " "))
			}
			b.WriteString("<blockquote>")
			renderBlocks(b, inner)
			b.WriteString("</blockquote>")
			styled, prevText = true, false
		case strings.HasPrefix(line, "```"):
			end := i + 1
			for end < len(lines) && lines[end] != "```" {
				end++
			}
			lang := strings.TrimSpace(line[3:])
			b.WriteString("<pre><code")
			if lang != "" && !strings.ContainsFunc(lang, func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsDigit(r) && r != '-' && r != '+' }) {
				b.WriteString(` class="language-` + lang + `"`)
			}
			b.WriteString(">")
			b.WriteString(html.EscapeString(strings.Join(lines[i+1:min(end, len(lines))], "\n")))
			b.WriteString("</code></pre>")
			i = end + 1
			styled, prevText = true, false
		default:
			if prevText {
				b.WriteString("<br>")
			}
			if renderSpans(b, line) {
				styled = true
			}
			prevText = true
			i++
		}
	}
	return styled
}

// bareURL matches what XMPP clients show as a link in a plain body: an
// http(s), xmpp: or mailto: URL up to white space (or a mention marker).
var bareURL = regexp.MustCompile(`(?i)\b(?:https?://|xmpp:|mailto:)[^\s<>"\x{E000}\x{E001}]+`)

// writeLinked writes text as HTML, with its bare URLs as links. Punctuation
// that ends a sentence is not taken into the URL, nor a ')' that closes
// what was opened before it.
func writeLinked(b *strings.Builder, text string) {
	last := 0
	for _, loc := range bareURL.FindAllStringIndex(text, -1) {
		start, end := loc[0], loc[1]
		for end > start {
			c := text[end-1]
			if strings.IndexByte(".,;:!?'", c) >= 0 ||
				c == ')' && strings.Count(text[start:end], "(") < strings.Count(text[start:end], ")") {
				end--
				continue
			}
			break
		}
		url := text[start:end]
		if !strings.Contains(url, "//") && !strings.Contains(url[strings.IndexByte(url, ':')+1:], "@") &&
			!strings.HasPrefix(strings.ToLower(url), "xmpp:") || strings.HasSuffix(url, ":") {
			continue // a scheme and nothing that could be an address
		}
		b.WriteString(html.EscapeString(text[last:start]))
		b.WriteString(`<a href="` + html.EscapeString(url) + `">` + html.EscapeString(url) + `</a>`)
		last = end
	}
	b.WriteString(html.EscapeString(text[last:]))
}

var spanTags = []struct {
	style styling.Style
	tag   string
}{
	{styling.SpanStrong, "strong"},
	{styling.SpanEmph, "em"},
	{styling.SpanStrike, "del"},
	{styling.SpanPre, "code"},
}

// renderSpans writes one line with its span styles as HTML tags; the
// styling directives themselves are left out.
func renderSpans(b *strings.Builder, line string) (styled bool) {
	d := styling.NewDecoder(strings.NewReader(line))
	var open []string
	closeAll := func() {
		for i := len(open) - 1; i >= 0; i-- {
			b.WriteString("</" + open[i] + ">")
		}
		open = open[:0]
	}
	for d.Next() {
		tok := d.Token()
		if tok.Mask&styling.SpanDirective != 0 {
			styled = true
			continue
		}
		var want []string
		for _, st := range spanTags {
			if tok.Mask&st.style != 0 {
				want = append(want, st.tag)
			}
		}
		if strings.Join(want, ",") != strings.Join(open, ",") {
			closeAll()
			for _, tag := range want {
				b.WriteString("<" + tag + ">")
			}
			open = append(open, want...)
		}
		if tok.Mask&styling.SpanPre != 0 {
			b.WriteString(html.EscapeString(string(tok.Data)))
		} else {
			writeLinked(b, string(tok.Data))
		}
	}
	closeAll()
	if err := d.Err(); err != nil && err != io.EOF {
		// The decoder gave up: the rest of the line as plain text.
		return false
	}
	return styled
}

// HTMLToStyling renders Matrix HTML as a plain XMPP body with XEP-0393
// styling. pill names a mentioned user, room or event the way the MUC shows
// it (a user's nick), so no raw Matrix ID is shown for a mention.
func HTMLToStyling(ctx context.Context, htmlBody string, pill func(id, displayname string) string) string {
	parser := &format.HTMLParser{
		TabsToSpaces:           4,
		Newline:                "\n",
		HorizontalLine:         "\n---\n",
		BoldConverter:          func(s string, _ format.Context) string { return styleSpan(s, "*") },
		ItalicConverter:        func(s string, _ format.Context) string { return styleSpan(s, "_") },
		StrikethroughConverter: func(s string, _ format.Context) string { return styleSpan(s, "~") },
		MonospaceConverter:     func(s string, _ format.Context) string { return styleSpan(s, "`") },
		MonospaceBlockConverter: func(code, lang string, _ format.Context) string {
			return "```" + lang + "\n" + strings.TrimSuffix(code, "\n") + "\n```"
		},
		PillConverter: func(displayname, mxid, eventID string, _ format.Context) string {
			if eventID != "" || pill == nil {
				return displayname
			}
			return pill(mxid, displayname)
		},
		SpoilerConverter: func(text, reason string, _ format.Context) string {
			if reason != "" {
				return "[spoiler: " + reason + "]"
			}
			return "[spoiler]"
		},
	}
	return strings.TrimSpace(parser.Parse(htmlBody, format.NewContext(ctx)))
}

// styleSpan wraps s in an XEP-0393 span directive. Spans may not begin or
// end with whitespace, so surrounding whitespace stays outside; a span of
// nothing but whitespace is left plain.
func styleSpan(s, marker string) string {
	trimmed := strings.TrimSpace(s)
	if trimmed == "" || strings.Contains(trimmed, "\n") {
		return s
	}
	i := strings.Index(s, trimmed)
	return s[:i] + marker + trimmed + marker + s[i+len(trimmed):]
}

// allowedXHTML maps the XHTML-IM elements kept in Matrix HTML.
var allowedXHTML = map[string]string{
	"strong": "strong", "b": "strong", "em": "em", "i": "em", "u": "u", "del": "del", "s": "del", "strike": "del",
	"code": "code", "pre": "pre", "blockquote": "blockquote", "a": "a", "br": "br", "p": "p",
	"ul": "ul", "ol": "ol", "li": "li",
}

// XHTMLToHTML turns an XEP-0071 XHTML-IM body, given as its XML tokens,
// into Matrix HTML that keeps only basic formatting: unknown elements are
// reduced to their text, attributes other than an http(s) or mailto link
// target are dropped, and all text is escaped.
func XHTMLToHTML(r xml.TokenReader) (string, error) {
	var b strings.Builder
	var stack []string
	for {
		tok, err := r.Token()
		if err == io.EOF {
			return strings.TrimSpace(b.String()), nil
		}
		if err != nil {
			return "", err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			tag, ok := allowedXHTML[t.Name.Local]
			if !ok || len(stack) == 0 && t.Name.Local == "body" {
				stack = append(stack, "")
				continue
			}
			stack = append(stack, tag)
			if tag == "br" {
				b.WriteString("<br>")
				continue
			}
			b.WriteString("<" + tag)
			if tag == "a" {
				for _, a := range t.Attr {
					href := strings.TrimSpace(a.Value)
					lower := strings.ToLower(href)
					if a.Name.Local == "href" && (strings.HasPrefix(lower, "https://") || strings.HasPrefix(lower, "http://") || strings.HasPrefix(lower, "mailto:")) {
						b.WriteString(` href="` + html.EscapeString(href) + `"`)
					}
				}
			}
			b.WriteString(">")
		case xml.EndElement:
			if len(stack) == 0 {
				continue
			}
			tag := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			if tag != "" && tag != "br" {
				b.WriteString("</" + tag + ">")
			}
		case xml.CharData:
			b.WriteString(html.EscapeString(string(t)))
		}
	}
}
