package xmpp

import "encoding/xml"

// DiscoInfo is an XEP-0030 disco#info result, with XEP-0128 extended
// information as data forms. (mellium's disco.Info drops its form when
// written.)
type DiscoInfo struct {
	XMLName    xml.Name        `xml:"http://jabber.org/protocol/disco#info query"`
	Node       string          `xml:"node,attr,omitempty"`
	Identities []DiscoIdentity `xml:"identity"`
	Features   []DiscoFeature  `xml:"feature"`
	Forms      []DataForm      `xml:"jabber:x:data x"`
}

// DiscoIdentity is an XEP-0030 identity.
type DiscoIdentity struct {
	Category string `xml:"category,attr"`
	Type     string `xml:"type,attr"`
	Name     string `xml:"name,attr,omitempty"`
}

// DiscoFeature is an XEP-0030 feature.
type DiscoFeature struct {
	Var string `xml:"var,attr"`
}

// Features returns feature elements for namespaces.
func Features(vars ...string) []DiscoFeature {
	f := make([]DiscoFeature, len(vars))
	for i, v := range vars {
		f[i] = DiscoFeature{Var: v}
	}
	return f
}

// DiscoItems is an XEP-0030 disco#items result.
type DiscoItems struct {
	XMLName xml.Name    `xml:"http://jabber.org/protocol/disco#items query"`
	Node    string      `xml:"node,attr,omitempty"`
	Items   []DiscoItem `xml:"item"`
}

// DiscoItem is one item of a disco#items result.
type DiscoItem struct {
	JID  Addr   `xml:"jid,attr"`
	Name string `xml:"name,attr,omitempty"`
	Node string `xml:"node,attr,omitempty"`
}

// DataForm is an XEP-0004 data form. Results (type "result") are written by
// hand since mellium's form package only makes type "form".
type DataForm struct {
	Type   string      `xml:"type,attr"`
	Fields []FormField `xml:"field"`
}

// FormField is one field of a data form.
type FormField struct {
	Var    string   `xml:"var,attr,omitempty"`
	Type   string   `xml:"type,attr,omitempty"`
	Label  string   `xml:"label,attr,omitempty"`
	Values []string `xml:"value"`
}
