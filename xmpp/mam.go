package xmpp

import (
	"encoding/xml"
	"time"
)

// Namespaces of message archives (XEP-0313) and what they use.
const (
	NSMAM     = "urn:xmpp:mam:2"
	NSRSM     = "http://jabber.org/protocol/rsm"
	NSForward = "urn:xmpp:forward:0"
	// nsClient is the namespace of stanzas forwarded inside others.
	nsClient = "jabber:client"
)

// MAMQuery is an XEP-0313 archive query. mellium's history.Query drops the
// RSM ids a query pages with, so the bridge reads its own.
type MAMQuery struct {
	XMLName  xml.Name     `xml:"urn:xmpp:mam:2 query"`
	QueryID  string       `xml:"queryid,attr"`
	Form     *CommandForm `xml:"jabber:x:data x"`
	Set      *RSMSet      `xml:"http://jabber.org/protocol/rsm set"`
	FlipPage *Empty       `xml:"urn:xmpp:mam:2 flip-page"`
}

// RSMSet is an XEP-0059 paging request. Before is set, possibly empty (the
// last page), when the element is present.
type RSMSet struct {
	Max    *int    `xml:"max"`
	After  *string `xml:"after"`
	Before *string `xml:"before"`
}

// Time returns a time field of the query's form (XEP-0082), zero if absent;
// ok is false if it is present but no time.
func (q *MAMQuery) Time(field string) (t time.Time, ok bool) {
	v := q.Form.Value(field)
	if v == "" {
		return time.Time{}, true
	}
	t, err := time.Parse(time.RFC3339, v)
	return t, err == nil
}

// MAMResult carries one archived message in answer to a query.
type MAMResult struct {
	QueryID   string    `xml:"queryid,attr,omitempty"`
	ID        string    `xml:"id,attr"`
	Forwarded Forwarded `xml:"urn:xmpp:forward:0 forwarded"`
}

// Forwarded is an XEP-0297 forwarded stanza with its delay stamp.
type Forwarded struct {
	Delay   *Delay   `xml:"urn:xmpp:delay delay"`
	Message *Message `xml:"jabber:client message"`
}

// MarshalXML writes the forwarded message in the jabber:client namespace
// that XEP-0297 asks for; the Message type alone would inherit forwarded's.
func (f Forwarded) MarshalXML(e *xml.Encoder, start xml.StartElement) error {
	start = xml.StartElement{Name: xml.Name{Space: NSForward, Local: "forwarded"}}
	if err := e.EncodeToken(start); err != nil {
		return err
	}
	if f.Delay != nil {
		if err := e.EncodeElement(f.Delay, xml.StartElement{Name: xml.Name{Space: NSDelay, Local: "delay"}}); err != nil {
			return err
		}
	}
	if f.Message != nil {
		if err := e.EncodeElement(f.Message, xml.StartElement{Name: xml.Name{Space: nsClient, Local: "message"}}); err != nil {
			return err
		}
	}
	return e.EncodeToken(start.End())
}

// MAMFin ends the answer to a query (XEP-0313 §4.3), with the ids of the
// first and last message sent for paging on.
type MAMFin struct {
	XMLName  xml.Name `xml:"urn:xmpp:mam:2 fin"`
	Complete bool     `xml:"complete,attr,omitempty"`
	Set      RSMResult
}

// RSMResult is the XEP-0059 answer: the page's first and last ids, left
// out when the page is empty (§2.6; mellium's paging.Set always writes
// them, empty).
type RSMResult struct {
	XMLName xml.Name `xml:"http://jabber.org/protocol/rsm set"`
	First   string   `xml:"first,omitempty"`
	Last    string   `xml:"last,omitempty"`
}
