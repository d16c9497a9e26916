package xmpp

import (
	"encoding/xml"
	"io"
	"strconv"
	"time"

	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/receipts"
	"mellium.im/xmpp/stanza"
)

// XML namespaces the component reads or writes.
const (
	NSMUC        = "http://jabber.org/protocol/muc"
	NSMUCUser    = "http://jabber.org/protocol/muc#user"
	NSStanzaID   = "urn:xmpp:sid:0"
	NSDelay      = "urn:xmpp:delay"
	NSPing       = "urn:xmpp:ping"
	NSDiscoInfo  = "http://jabber.org/protocol/disco#info"
	NSDiscoItems = "http://jabber.org/protocol/disco#items"
	NSDataForms  = "jabber:x:data"
	NSStanzas    = "urn:ietf:params:xml:ns:xmpp-stanzas"
	NSOccupantID = "urn:xmpp:occupant-id:0"
	NSMUCAdmin   = "http://jabber.org/protocol/muc#admin"
)

// Addr is a JID in an XML attribute. It is read with ParseJID, so that room
// JIDs holding non-ASCII letters are accepted, and a zero Addr is left out
// when written.
type Addr struct{ jid.JID }

// A returns j as an Addr.
func A(j jid.JID) Addr { return Addr{j} }

// IsZero reports whether the address is empty.
func (a Addr) IsZero() bool { return a.JID.Equal(jid.JID{}) }

// MarshalXMLAttr implements xml.MarshalerAttr.
func (a Addr) MarshalXMLAttr(name xml.Name) (xml.Attr, error) {
	if a.IsZero() {
		return xml.Attr{}, nil
	}
	return xml.Attr{Name: name, Value: a.String()}, nil
}

// UnmarshalXMLAttr implements xml.UnmarshalerAttr.
func (a *Addr) UnmarshalXMLAttr(attr xml.Attr) error {
	if attr.Value == "" {
		a.JID = jid.JID{}
		return nil
	}
	j, err := ParseJID(attr.Value)
	if err != nil {
		return &AddrError{Value: attr.Value, Err: err}
	}
	a.JID = j
	return nil
}

// AddrError is returned when decoding a stanza whose address is not a JID.
type AddrError struct {
	Value string
	Err   error
}

func (e *AddrError) Error() string {
	return "invalid JID " + strconv.Quote(e.Value) + ": " + e.Err.Error()
}
func (e *AddrError) Unwrap() error { return e.Err }

// Message is a message stanza (RFC 6120 §8, RFC 6121 §5), with the payloads
// the bridge reads or writes.
type Message struct {
	XMLName      xml.Name      `xml:"message"`
	ID           string        `xml:"id,attr,omitempty"`
	Type         string        `xml:"type,attr,omitempty"`
	From         Addr          `xml:"from,attr"`
	To           Addr          `xml:"to,attr"`
	Lang         string        `xml:"http://www.w3.org/XML/1998/namespace lang,attr,omitempty"`
	Subject      *string       `xml:"subject"`
	Body         string        `xml:"body,omitempty"`
	Error        *stanza.Error `xml:"error"`
	Delay        *Delay        `xml:"urn:xmpp:delay delay"`
	StanzaID     *StanzaID     `xml:"urn:xmpp:sid:0 stanza-id"`
	OriginID     *OriginID     `xml:"urn:xmpp:sid:0 origin-id"`
	OccupantID   *OccupantID   `xml:"urn:xmpp:occupant-id:0 occupant-id"`
	MUCUser      *MUCUser      `xml:"http://jabber.org/protocol/muc#user x"`
	DirectInvite *DirectInvite `xml:"jabber:x:conference x"`
	References   []Reference   `xml:"urn:xmpp:reference:0 reference"`
	XHTML        *XHTMLIM      `xml:"http://jabber.org/protocol/xhtml-im html"`
	Replace      *Replace      `xml:"urn:xmpp:message-correct:0 replace"`
	Reply        *Reply        `xml:"urn:xmpp:reply:0 reply"`
	Fallbacks    []Fallback    `xml:"urn:xmpp:fallback:0 fallback"`
	Retract      *Retract      `xml:"urn:xmpp:message-retract:1 retract"`
	Reactions    *Reactions    `xml:"urn:xmpp:reactions:0 reactions"`
	Markable     *Empty        `xml:"urn:xmpp:chat-markers:0 markable"`
	Displayed    *Marker       `xml:"urn:xmpp:chat-markers:0 displayed"`
	// ReceiptRequest asks for an XEP-0184 delivery receipt, Received is one.
	ReceiptRequest receipts.Requested `xml:"urn:xmpp:receipts request,omitempty"`
	Received       *Receipt           `xml:"urn:xmpp:receipts received"`
	Composing      *Empty             `xml:"http://jabber.org/protocol/chatstates composing"`
	Paused         *Empty             `xml:"http://jabber.org/protocol/chatstates paused"`
	Active         *Empty             `xml:"http://jabber.org/protocol/chatstates active"`
	Inactive       *Empty             `xml:"http://jabber.org/protocol/chatstates inactive"`
	Gone           *Empty             `xml:"http://jabber.org/protocol/chatstates gone"`
	Store          *Empty             `xml:"urn:xmpp:hints store"`
	NoStore        *Empty             `xml:"urn:xmpp:hints no-store"`
	OOB            *OOB               `xml:"jabber:x:oob x"`
	FileSharing    *FileSharing       `xml:"urn:xmpp:sfs:0 file-sharing"`
	MAMResult      *MAMResult         `xml:"urn:xmpp:mam:2 result"`
	// Nick is the sender's name (XEP-0172), for one-to-one chats.
	Nick string `xml:"http://jabber.org/protocol/nick nick,omitempty"`
	// Probe is set on the messages the component sends itself to learn
	// whether it is alone (probe.go); they never reach the Handler.
	Probe *Probe `xml:"urn:x-mxpp:probe:0 probe"`
	// Size is what the stanza took on the wire, as the component counts
	// it when it reads one (see WireSize); 0 for stanzas made here.
	Size int `xml:"-"`
}

// Presence is a presence stanza (RFC 6121 §4) with its MUC payloads.
type Presence struct {
	XMLName     xml.Name      `xml:"presence"`
	ID          string        `xml:"id,attr,omitempty"`
	Type        string        `xml:"type,attr,omitempty"`
	From        Addr          `xml:"from,attr"`
	To          Addr          `xml:"to,attr"`
	Lang        string        `xml:"http://www.w3.org/XML/1998/namespace lang,attr,omitempty"`
	Show        string        `xml:"show,omitempty"`
	Status      string        `xml:"status,omitempty"`
	Priority    int           `xml:"priority,omitempty"`
	Error       *stanza.Error `xml:"error"`
	MUC         *MUCJoin      `xml:"http://jabber.org/protocol/muc x"`
	MUCUser     *MUCUser      `xml:"http://jabber.org/protocol/muc#user x"`
	OccupantID  *OccupantID   `xml:"urn:xmpp:occupant-id:0 occupant-id"`
	Nick        string        `xml:"http://jabber.org/protocol/nick nick,omitempty"`
	VCardUpdate *VCardUpdate  `xml:"vcard-temp:x:update x"`
	Idle        *Idle         `xml:"urn:xmpp:idle:1 idle"`
	Size        int           `xml:"-"` // as Message.Size
}

// Idle is XEP-0319's last user interaction: since when the user has been
// idle.
type Idle struct {
	Since time.Time `xml:"since,attr"`
}

// WireSize returns the size a stanza read by the component took on the
// wire (Message.Size), and its sender's bare JID; 0 and "" for anything
// else.
func WireSize(st any) (int, string) {
	switch s := st.(type) {
	case *Message:
		return s.Size, s.From.Bare().String()
	case *Presence:
		return s.Size, s.From.Bare().String()
	case *IQ:
		return s.Size, s.From.Bare().String()
	}
	return 0, ""
}

// HasStatus reports whether the presence carries the MUC status code.
func (p *Presence) HasStatus(code int) bool {
	if p.MUCUser == nil {
		return false
	}
	for _, s := range p.MUCUser.Status {
		if s.Code == code {
			return true
		}
	}
	return false
}

// IQ is an info/query stanza (RFC 6120 §8.2.3). Payload holds the raw child
// element of a get or set; Body is written out as the child of a result.
type IQ struct {
	XMLName xml.Name      `xml:"iq"`
	ID      string        `xml:"id,attr"`
	Type    string        `xml:"type,attr"`
	From    Addr          `xml:"from,attr"`
	To      Addr          `xml:"to,attr"`
	Lang    string        `xml:"http://www.w3.org/XML/1998/namespace lang,attr,omitempty"`
	Payload Payload       `xml:",any"`
	Body    any           `xml:",omitempty"`
	Error   *stanza.Error `xml:"error"`
	Size    int           `xml:"-"` // as Message.Size
}

// Payload is the first child element of an IQ, kept as tokens until a
// handler decodes it with Decode.
type Payload struct {
	XMLName xml.Name
	tokens  []xml.Token
}

// UnmarshalXML implements xml.Unmarshaler by keeping the element's tokens.
func (p *Payload) UnmarshalXML(d *xml.Decoder, start xml.StartElement) error {
	p.XMLName = start.Name
	p.tokens = append(p.tokens[:0], start.Copy())
	for depth := 1; depth > 0; {
		tok, err := d.Token()
		if err != nil {
			return err
		}
		switch tok.(type) {
		case xml.StartElement:
			depth++
		case xml.EndElement:
			depth--
		}
		p.tokens = append(p.tokens, xml.CopyToken(tok))
	}
	return nil
}

// MarshalXML writes nothing: a Payload is only ever read. Replies carry
// their child in IQ.Body.
func (p Payload) MarshalXML(*xml.Encoder, xml.StartElement) error { return nil }

// Decode decodes the payload element into v.
func (p Payload) Decode(v any) error {
	if len(p.tokens) == 0 {
		return io.EOF
	}
	return xml.NewTokenDecoder(&tokenSlice{toks: p.tokens}).Decode(v)
}

// Tokens returns a reader of the payload's element, start and end included.
func (p Payload) Tokens() xml.TokenReader { return &tokenSlice{toks: p.tokens} }

type tokenSlice struct{ toks []xml.Token }

func (t *tokenSlice) Token() (xml.Token, error) {
	if len(t.toks) == 0 {
		return nil, io.EOF
	}
	tok := t.toks[0]
	t.toks = t.toks[1:]
	return tok, nil
}

// Stanza types of the bridge's concern.
const (
	TypeGroupchat   = "groupchat"
	TypeChat        = "chat"
	TypeHeadline    = "headline"
	TypeError       = "error"
	TypeUnavailable = "unavailable"
	TypeGet         = "get"
	TypeSet         = "set"
	TypeResult      = "result"
)

// StanzaID is the XEP-0359 id a MUC service gives each message it reflects.
type StanzaID struct {
	ID string `xml:"id,attr"`
	By string `xml:"by,attr"`
}

// OriginID is the XEP-0359 id the sender gave its message.
type OriginID struct {
	ID string `xml:"id,attr"`
}

// OccupantID is the XEP-0421 id a room gives an occupant: stable for the
// room, opaque, and the same whatever nick or session the occupant uses.
type OccupantID struct {
	ID string `xml:"id,attr"`
}

// Delay is the XEP-0203 delayed-delivery stamp.
type Delay struct {
	From  string    `xml:"from,attr,omitempty"`
	Stamp time.Time `xml:"stamp,attr"`
}

// MUCJoin is the <x xmlns='http://jabber.org/protocol/muc'/> of a join
// request (XEP-0045 §7.2).
type MUCJoin struct {
	Password string      `xml:"password,omitempty"`
	History  *MUCHistory `xml:"history"`
}

// MUCHistory is the history a joining client asks for (XEP-0045 §7.2.13).
type MUCHistory struct {
	MaxChars   *int       `xml:"maxchars,attr,omitempty"`
	MaxStanzas *int       `xml:"maxstanzas,attr,omitempty"`
	Seconds    *int       `xml:"seconds,attr,omitempty"`
	Since      *time.Time `xml:"since,attr,omitempty"`
}

// MUCUser is the <x xmlns='http://jabber.org/protocol/muc#user'/> payload
// of occupant presence (XEP-0045 §7.2.2).
type MUCUser struct {
	Items   []MUCItem   `xml:"item"`
	Status  []MUCStatus `xml:"status"`
	Destroy *MUCDestroy `xml:"destroy"`
	Invite  []MUCInvite `xml:"invite"`
}

// MUCInvite is a mediated invitation (XEP-0045 §7.8.2): to the room from an
// occupant, or from the room to the invitee.
type MUCInvite struct {
	To     Addr   `xml:"to,attr"`
	From   Addr   `xml:"from,attr"`
	Reason string `xml:"reason,omitempty"`
}

// DirectInvite is an XEP-0249 direct MUC invitation.
type DirectInvite struct {
	JID    Addr   `xml:"jid,attr"`
	Reason string `xml:"reason,attr,omitempty"`
}

// MUCAdmin is the muc#admin query of moderation requests (XEP-0045 §8, §9).
type MUCAdmin struct {
	XMLName xml.Name  `xml:"http://jabber.org/protocol/muc#admin query"`
	Items   []MUCItem `xml:"item"`
}

// MUCItem describes an occupant. Affiliation and role are plain strings: the
// muc.Item of mellium v0.22.0 marshals them as numbers and drops "none".
type MUCItem struct {
	Affiliation string    `xml:"affiliation,attr,omitempty"`
	Role        string    `xml:"role,attr,omitempty"`
	JID         Addr      `xml:"jid,attr"`
	Nick        string    `xml:"nick,attr,omitempty"`
	Actor       *MUCActor `xml:"actor"`
	Reason      string    `xml:"reason,omitempty"`
}

// MUCActor names who kicked or banned an occupant.
type MUCActor struct {
	Nick string `xml:"nick,attr,omitempty"`
	JID  Addr   `xml:"jid,attr"`
}

// MUCStatus is an XEP-0045 status code.
type MUCStatus struct {
	Code int `xml:"code,attr"`
}

// XEP-0045 status codes (§15.6.2).
const (
	StatusNonAnonymous = 100
	StatusSelf         = 110
	StatusLogged       = 170
	StatusCreated      = 201
	StatusNickAssigned = 210
	StatusBanned       = 301
	StatusNewNick      = 303
	StatusKicked       = 307
	StatusShutdown     = 332
)

// Affiliations and roles as XEP-0045 names them.
const (
	AffOwner        = "owner"
	AffAdmin        = "admin"
	AffMember       = "member"
	AffNone         = "none"
	AffOutcast      = "outcast"
	RoleModerator   = "moderator"
	RoleParticipant = "participant"
	RoleVisitor     = "visitor"
	RoleNone        = "none"
)

// Statuses returns status elements for codes.
func Statuses(codes ...int) []MUCStatus {
	s := make([]MUCStatus, len(codes))
	for i, c := range codes {
		s[i] = MUCStatus{Code: c}
	}
	return s
}

// StanzaError returns a stanza error of the condition's usual type (RFC 6120
// §8.3.3) with an optional human-readable text.
func StanzaError(cond stanza.Condition, text string) *stanza.Error {
	e := &stanza.Error{Condition: cond, Type: errorType(cond)}
	if text != "" {
		e.Text = map[string]string{"": text}
	}
	return e
}

// ErrorReply returns the error answer to a stanza, from the address it was
// sent to (RFC 6120 §8.3): the same kind and id, with serr. It returns nil
// for what is never answered with an error: an error itself, an IQ result,
// an unavailable presence. The answer to a MUC join carries an empty MUC
// element, as XEP-0045 shows (never the join's password).
func ErrorReply(st any, serr *stanza.Error) any {
	switch s := st.(type) {
	case *Message:
		if s.Type != TypeError {
			return &Message{ID: s.ID, Type: TypeError, From: s.To, To: s.From, Error: serr}
		}
	case *Presence:
		if s.Type != TypeError && s.Type != TypeUnavailable {
			reply := &Presence{ID: s.ID, Type: TypeError, From: s.To, To: s.From, Error: serr}
			if s.MUC != nil {
				reply.MUC = &MUCJoin{}
			}
			return reply
		}
	case *IQ:
		if s.Type != TypeResult && s.Type != TypeError { // get, set, or a type that is itself the error
			return &IQ{ID: s.ID, Type: TypeError, From: s.To, To: s.From, Error: serr}
		}
	}
	return nil
}

func errorType(cond stanza.Condition) stanza.ErrorType {
	switch cond {
	case stanza.BadRequest, stanza.JIDMalformed, stanza.NotAcceptable, stanza.PolicyViolation, stanza.Redirect, stanza.Conflict:
		return stanza.Modify
	case stanza.Forbidden, stanza.NotAuthorized, stanza.RegistrationRequired, stanza.SubscriptionRequired:
		return stanza.Auth
	case stanza.ResourceConstraint, stanza.RecipientUnavailable, stanza.RemoteServerTimeout, stanza.InternalServerError, stanza.UnexpectedRequest:
		return stanza.Wait
	}
	return stanza.Cancel
}

// MUCDestroy tells occupants that the room is gone, and where it went
// (XEP-0045 §10.9).
type MUCDestroy struct {
	JID    Addr   `xml:"jid,attr"`
	Reason string `xml:"reason,omitempty"`
}

// Reference is an XEP-0372 reference, such as a mention, to a range of the
// body given in Unicode code points.
type Reference struct {
	Type  string `xml:"type,attr"`
	URI   string `xml:"uri,attr"`
	Begin *int   `xml:"begin,attr,omitempty"`
	End   *int   `xml:"end,attr,omitempty"`
}

// XHTMLIM is an XEP-0071 XHTML-IM payload; only its body is read.
type XHTMLIM struct {
	Body Payload `xml:"http://www.w3.org/1999/xhtml body"`
}

// NSReference is the XEP-0372 namespace.
const NSReference = "urn:xmpp:reference:0"

// Replace marks a message as the correction of an earlier one (XEP-0308).
type Replace struct {
	ID string `xml:"id,attr"`
}

// Reply marks a message as a reply (XEP-0461): To is who wrote the message
// replied to, ID its id (in a MUC, the room's stanza-id).
type Reply struct {
	To Addr   `xml:"to,attr"`
	ID string `xml:"id,attr"`
}

// Fallback marks the part of the body that only clients without the
// feature named by For need (XEP-0428), in code points. No Bodies means
// the whole body.
type Fallback struct {
	For    string         `xml:"for,attr"`
	Bodies []FallbackBody `xml:"body"`
}

// FallbackBody is one fallback range of the body; no range means all of it.
type FallbackBody struct {
	Start *int `xml:"start,attr,omitempty"`
	End   *int `xml:"end,attr,omitempty"`
}

// Namespaces of message relations.
const (
	NSCorrect = "urn:xmpp:message-correct:0"
	NSReply   = "urn:xmpp:reply:0"
)

// StripFallback removes from body the ranges marked as fallback for
// feature, returning the rest. Ranges out of bounds are ignored.
func StripFallback(body string, fallbacks []Fallback, feature string) string {
	runes := []rune(body)
	drop := make([]bool, len(runes))
	found := false
	for _, fb := range fallbacks {
		if fb.For != feature {
			continue
		}
		bodies := fb.Bodies
		if len(bodies) == 0 {
			bodies = []FallbackBody{{}}
		}
		for _, b := range bodies {
			start, end := 0, len(runes)
			if b.Start != nil && b.End != nil {
				start, end = *b.Start, *b.End
			}
			if start < 0 || end > len(runes) || start > end {
				continue
			}
			for i := start; i < end; i++ {
				drop[i] = true
			}
			found = true
		}
	}
	if !found {
		return body
	}
	var out []rune
	for i, r := range runes {
		if !drop[i] {
			out = append(out, r)
		}
	}
	return string(out)
}

// Namespaces of message retraction and moderation, chat states, markers
// and reactions.
const (
	NSRetract    = "urn:xmpp:message-retract:1"
	NSModerate   = "urn:xmpp:message-moderate:1"
	NSChatStates = "http://jabber.org/protocol/chatstates"
	NSReceipts   = receipts.NS
	NSMarkers    = "urn:xmpp:chat-markers:0"
	NSReactions  = "urn:xmpp:reactions:0"
	NSFallback   = "urn:xmpp:fallback:0"
)

// Empty is a payload element without content, such as a chat state.
type Empty struct{}

// Retract asks to retract a message (XEP-0424), or, with Moderated, tells
// that a moderator did (XEP-0425). In a MUC, ID is the room's stanza-id.
type Retract struct {
	ID        string     `xml:"id,attr"`
	Moderated *Moderated `xml:"urn:xmpp:message-moderate:1 moderated"`
	Reason    string     `xml:"reason,omitempty"`
}

// Moderated names the moderator of a retraction.
type Moderated struct {
	By         Addr        `xml:"by,attr"`
	OccupantID *OccupantID `xml:"urn:xmpp:occupant-id:0 occupant-id"`
}

// Moderate is the XEP-0425 request a moderator sends to the room.
type Moderate struct {
	XMLName xml.Name `xml:"urn:xmpp:message-moderate:1 moderate"`
	ID      string   `xml:"id,attr"`
	Retract *Empty   `xml:"urn:xmpp:message-retract:1 retract"`
	Reason  string   `xml:"reason,omitempty"`
}

// Marker is an XEP-0333 chat marker.
type Marker struct {
	ID string `xml:"id,attr"`
}

// Receipt is an XEP-0184 delivery receipt for the message of an id (mellium
// reads and writes only the request).
type Receipt struct {
	ID string `xml:"id,attr"`
}

// Reactions is the full set of one sender's reactions to a message
// (XEP-0444). In a MUC, ID is the room's stanza-id.
type Reactions struct {
	ID        string   `xml:"id,attr"`
	Reactions []string `xml:"reaction"`
}

// OOB is an XEP-0066 out-of-band link to a file.
type OOB struct {
	URL  string `xml:"url"`
	Desc string `xml:"desc,omitempty"`
}

// FileSharing is XEP-0447 stateless file sharing: the file's XEP-0446
// metadata and where to get it.
type FileSharing struct {
	Disposition string       `xml:"disposition,attr,omitempty"`
	File        FileMetadata `xml:"urn:xmpp:file:metadata:0 file"`
	Sources     struct {
		URLs []URLData `xml:"http://jabber.org/protocol/url-data url-data"`
	} `xml:"sources"`
}

// FileMetadata is XEP-0446 file metadata.
type FileMetadata struct {
	MediaType string `xml:"media-type,omitempty"`
	Name      string `xml:"name,omitempty"`
	Size      int64  `xml:"size,omitempty"`
	Width     int    `xml:"width,omitempty"`
	Height    int    `xml:"height,omitempty"`
	Desc      string `xml:"desc,omitempty"`
}

// URLData is an XEP-0103 URL source.
type URLData struct {
	Target string `xml:"target,attr"`
}
