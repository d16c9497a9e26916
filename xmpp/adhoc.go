package xmpp

import "encoding/xml"

// NSCommands is the XEP-0050 ad-hoc commands namespace.
const NSCommands = "http://jabber.org/protocol/commands"

// Command is an XEP-0050 command request or answer.
type Command struct {
	XMLName   xml.Name        `xml:"http://jabber.org/protocol/commands command"`
	Node      string          `xml:"node,attr"`
	Action    string          `xml:"action,attr,omitempty"`
	SessionID string          `xml:"sessionid,attr,omitempty"`
	Status    string          `xml:"status,attr,omitempty"`
	Actions   *CommandActions `xml:"actions"`
	Notes     []CommandNote   `xml:"note"`
	Form      *CommandForm    `xml:"jabber:x:data x"`
}

// CommandActions are the actions a multi-stage command offers.
type CommandActions struct {
	Execute  string `xml:"execute,attr,omitempty"`
	Complete *Empty `xml:"complete"`
}

// CommandNote is a note in a command's answer.
type CommandNote struct {
	Type string `xml:"type,attr"`
	Text string `xml:",chardata"`
}

// CommandForm is the data form of a command (XEP-0004).
type CommandForm struct {
	Type   string             `xml:"type,attr"`
	Title  string             `xml:"title,omitempty"`
	Fields []CommandFormField `xml:"field"`
}

// CommandFormField is one field of a command's form.
type CommandFormField struct {
	Var      string   `xml:"var,attr"`
	Type     string   `xml:"type,attr,omitempty"`
	Label    string   `xml:"label,attr,omitempty"`
	Required *Empty   `xml:"required"`
	Values   []string `xml:"value"`
}

// Value returns the first value of a field of a submitted form.
func (f *CommandForm) Value(name string) string {
	if f == nil {
		return ""
	}
	for _, fl := range f.Fields {
		if fl.Var == name && len(fl.Values) > 0 {
			return fl.Values[0]
		}
	}
	return ""
}
