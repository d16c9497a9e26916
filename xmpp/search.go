package xmpp

import "encoding/xml"

// NSSearch is XEP-0055 Jabber Search (mellium has no package for it).
const NSSearch = "jabber:iq:search"

// SearchQuery is an XEP-0055 query with an extended form (XEP-0004): the
// form a client gets and submits, or the results.
type SearchQuery struct {
	XMLName      xml.Name    `xml:"jabber:iq:search query"`
	Instructions string      `xml:"instructions,omitempty"`
	Form         *SearchForm `xml:"jabber:x:data x"`
}

// SearchForm is a data form as XEP-0055 uses it: fields to fill in, or the
// reported fields and one item per result.
type SearchForm struct {
	Type     string         `xml:"type,attr"`
	Title    string         `xml:"title,omitempty"`
	Fields   []FormField    `xml:"field"`
	Reported *SearchFields  `xml:"reported"`
	Items    []SearchFields `xml:"item"`
}

// SearchFields are the fields of a form's reported header or of one item.
type SearchFields struct {
	Fields []FormField `xml:"field"`
}

// Value returns the first value of a field of a submitted form.
func (f *SearchForm) Value(name string) string {
	if f == nil {
		return ""
	}
	for _, field := range f.Fields {
		if field.Var == name && len(field.Values) > 0 {
			return field.Values[0]
		}
	}
	return ""
}
