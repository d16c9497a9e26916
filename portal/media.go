package portal

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

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

// URL returns the link to an mxc:// URI, valid for TTL.
func (ml *MediaLinks) URL(uri id.ContentURIString, fileName string) (string, error) {
	mxc, err := id.ParseContentURI(string(uri))
	if err != nil || mxc.IsEmpty() {
		return "", fmt.Errorf("invalid media URI %q", uri)
	}
	exp := strconv.FormatInt(time.Now().Add(ml.TTL).Unix(), 10)
	if fileName == "" || strings.ContainsAny(fileName, "/\\") {
		fileName = "file"
	}
	path := strings.Join([]string{url.PathEscape(mxc.Homeserver), url.PathEscape(mxc.FileID), exp, url.PathEscape(fileName)}, "/")
	return strings.TrimSuffix(ml.BaseURL, "/") + MediaPathPrefix + ml.sign(mxc.Homeserver, mxc.FileID, exp, fileName) + "/" + path, nil
}

func (ml *MediaLinks) sign(server, mediaID, exp, fileName string) string {
	mac := hmac.New(sha256.New, ml.Key)
	for _, part := range []string{server, mediaID, exp, fileName} {
		mac.Write([]byte(part))
		mac.Write([]byte{0})
	}
	return base64.RawURLEncoding.EncodeToString(mac.Sum(nil)[:24])
}

// Check verifies a request path (after MediaPathPrefix) and returns the
// media it names and its file name.
func (ml *MediaLinks) Check(path string) (id.ContentURI, string, error) {
	parts := strings.Split(path, "/")
	if len(parts) != 5 {
		return id.ContentURI{}, "", ErrBadLink
	}
	var dec [4]string
	for i, p := range parts[1:] {
		v, err := url.PathUnescape(p)
		if err != nil {
			return id.ContentURI{}, "", ErrBadLink
		}
		dec[i] = v
	}
	server, mediaID, exp, fileName := dec[0], dec[1], dec[2], dec[3]
	if !hmac.Equal([]byte(parts[0]), []byte(ml.sign(server, mediaID, exp, fileName))) {
		return id.ContentURI{}, "", ErrBadLink
	}
	expiry, err := strconv.ParseInt(exp, 10, 64)
	if err != nil {
		return id.ContentURI{}, "", ErrBadLink
	}
	if time.Now().Unix() > expiry {
		return id.ContentURI{}, "", ErrExpiredLink
	}
	return id.ContentURI{Homeserver: server, FileID: mediaID}, fileName, nil
}

// MediaFetched is what a media download from an XMPP link brought.
type MediaFetched struct {
	Data        []byte
	ContentType string
	FileName    string
}
