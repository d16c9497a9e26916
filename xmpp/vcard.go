package xmpp

import (
	"crypto/sha1"
	"encoding/base64"
	"encoding/hex"
	"encoding/xml"
	"strings"
)

// Namespaces of vCard-based avatars.
const (
	NSVCard       = "vcard-temp"
	NSVCardUpdate = "vcard-temp:x:update"
)

// VCard is the part of an XEP-0054 vCard the bridge reads and writes.
type VCard struct {
	XMLName  xml.Name    `xml:"vcard-temp vCard"`
	FN       string      `xml:"FN,omitempty"`
	Nickname string      `xml:"NICKNAME,omitempty"`
	Photo    *VCardPhoto `xml:"PHOTO"`
}

// VCardPhoto is a vCard's embedded avatar.
type VCardPhoto struct {
	Type   string `xml:"TYPE,omitempty"`
	BinVal string `xml:"BINVAL"`
}

// NewVCardPhoto embeds an image.
func NewVCardPhoto(data []byte, contentType string) *VCardPhoto {
	return &VCardPhoto{Type: contentType, BinVal: base64.StdEncoding.EncodeToString(data)}
}

// Data decodes the photo. Line breaks and spaces, which some clients put
// into the base64, are ignored.
func (p *VCardPhoto) Data() ([]byte, error) {
	clean := strings.Map(func(r rune) rune {
		if r == ' ' || r == '\n' || r == '\r' || r == '\t' {
			return -1
		}
		return r
	}, p.BinVal)
	return base64.StdEncoding.DecodeString(clean)
}

// VCardUpdate is the XEP-0153 avatar hash in presence. A nil Photo means
// "not telling"; an empty one "no avatar".
type VCardUpdate struct {
	Photo *string `xml:"photo"`
}

// PhotoHash is the XEP-0153 hash of an avatar: hex SHA-1 of its bytes.
func PhotoHash(data []byte) string {
	sum := sha1.Sum(data)
	return hex.EncodeToString(sum[:])
}
