package msgconv

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"maunium.net/go/mautrix/crypto/attachment"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
)

// MediaPathPrefix is where the bridge serves Matrix media to XMPP users.
const MediaPathPrefix = "/_mxpp/media/"

// MediaLinks makes and checks the signed, expiring links through which XMPP
// users fetch Matrix media: they cannot fetch authenticated Matrix media
// themselves. A link names the media, a file name and an expiry, signed
// with an HMAC, so the bridge serves nothing it did not hand out.
type MediaLinks struct {
	Key     []byte
	BaseURL string // public URL of the bridge's HTTP listener
	TTL     time.Duration
}

// Errors of MediaLinks.Check.
var (
	ErrBadLink     = errors.New("not a media link of this bridge")
	ErrExpiredLink = errors.New("media link expired")
)

// LinkedFile is what a media link names: a file of the media repository,
// its name, and for a file of an encrypted room what decrypts it and its
// real type (the repository holds only ciphertext).
type LinkedFile struct {
	MXC      id.ContentURI
	FileName string
	// Encryption is nil for a plain file.
	Encryption *attachment.EncryptedFile
	MimeType   string
}

// secret is the part of a link to an encrypted file that decrypts it.
type secret struct {
	File     *attachment.EncryptedFile `json:"file"`
	MimeType string                    `json:"mime,omitempty"`
}

// URL returns the link to an mxc:// URI, valid for TTL.
func (ml *MediaLinks) URL(uri id.ContentURIString, fileName string) (string, error) {
	return ml.link(uri, fileName, "")
}

// EncryptedURL returns the link to a file of an encrypted room, valid for
// TTL. The link carries the file's key: whoever has it gets the file
// decrypted, as with any link to a plain file.
func (ml *MediaLinks) EncryptedURL(file *event.EncryptedFileInfo, fileName, mimeType string) (string, error) {
	blob, err := json.Marshal(secret{File: &file.EncryptedFile, MimeType: mimeType})
	if err != nil {
		return "", err
	}
	return ml.link(file.URL, fileName, base64.RawURLEncoding.EncodeToString(blob))
}

func (ml *MediaLinks) link(uri id.ContentURIString, fileName, blob string) (string, error) {
	mxc, err := id.ParseContentURI(string(uri))
	if err != nil || mxc.IsEmpty() {
		return "", fmt.Errorf("invalid media URI %q", uri)
	}
	exp := strconv.FormatInt(time.Now().Add(ml.TTL).Unix(), 10)
	if fileName == "" || strings.ContainsAny(fileName, "/\\") {
		fileName = "file"
	}
	parts := []string{mxc.Homeserver, mxc.FileID, exp, fileName}
	if blob != "" {
		parts = append(parts, blob)
	}
	escaped := make([]string, len(parts))
	for i, p := range parts {
		escaped[i] = url.PathEscape(p)
	}
	return strings.TrimSuffix(ml.BaseURL, "/") + MediaPathPrefix + ml.sign(parts...) + "/" + strings.Join(escaped, "/"), nil
}

func (ml *MediaLinks) sign(parts ...string) string {
	mac := hmac.New(sha256.New, ml.Key)
	for _, part := range parts {
		mac.Write([]byte(part))
		mac.Write([]byte{0})
	}
	return base64.RawURLEncoding.EncodeToString(mac.Sum(nil)[:24])
}

// Check verifies a request path (after MediaPathPrefix) and returns the
// file it names.
func (ml *MediaLinks) Check(path string) (*LinkedFile, error) {
	parts := strings.Split(path, "/")
	if len(parts) != 5 && len(parts) != 6 {
		return nil, ErrBadLink
	}
	dec := make([]string, len(parts)-1)
	for i, p := range parts[1:] {
		v, err := url.PathUnescape(p)
		if err != nil {
			return nil, ErrBadLink
		}
		dec[i] = v
	}
	if !hmac.Equal([]byte(parts[0]), []byte(ml.sign(dec...))) {
		return nil, ErrBadLink
	}
	expiry, err := strconv.ParseInt(dec[2], 10, 64)
	if err != nil {
		return nil, ErrBadLink
	}
	if time.Now().Unix() > expiry {
		return nil, ErrExpiredLink
	}
	f := &LinkedFile{MXC: id.ContentURI{Homeserver: dec[0], FileID: dec[1]}, FileName: dec[3]}
	if len(dec) == 5 {
		raw, err := base64.RawURLEncoding.DecodeString(dec[4])
		var sec secret
		if err != nil || json.Unmarshal(raw, &sec) != nil || sec.File == nil {
			return nil, ErrBadLink
		}
		f.Encryption, f.MimeType = sec.File, sec.MimeType
	}
	return f, nil
}

// MediaFetched is what a media download from an XMPP link brought.
type MediaFetched struct {
	Data        []byte
	ContentType string
	FileName    string
}
