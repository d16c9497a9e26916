package matrix

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"
)

// ErrTooLarge is returned by DownloadMedia for content over the limit.
var ErrTooLarge = errors.New("media is larger than allowed")

// DownloadMedia fetches the content of an mxc:// URI, at most maxBytes of
// it, with its content type.
func (c *Connector) DownloadMedia(ctx context.Context, uri id.ContentURIString, maxBytes int64) ([]byte, string, error) {
	resp, err := c.OpenMedia(ctx, uri)
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxBytes+1))
	if err != nil {
		return nil, "", fmt.Errorf("failed to read %s: %w", uri, err)
	}
	if int64(len(data)) > maxBytes {
		return nil, "", fmt.Errorf("%s: %w (%d bytes)", uri, ErrTooLarge, maxBytes)
	}
	return data, resp.Header.Get("Content-Type"), nil
}

// OpenMedia starts a download of an mxc:// URI; the caller reads and closes
// the body. It uses authenticated media (Matrix 1.11) and falls back to the
// older endpoint for homeservers that do not have it.
func (c *Connector) OpenMedia(ctx context.Context, uri id.ContentURIString) (*http.Response, error) {
	mxc, err := id.ParseContentURI(string(uri))
	if err != nil || mxc.IsEmpty() {
		return nil, fmt.Errorf("invalid media URI %q", uri)
	}
	resp, err := c.Bot().Download(ctx, mxc)
	if errors.Is(err, mautrix.MUnrecognized) || errors.Is(err, mautrix.MNotFound) {
		resp, err = c.downloadLegacy(ctx, mxc)
	}
	if err != nil {
		return nil, fmt.Errorf("failed to download %s: %w", uri, err)
	}
	return resp, nil
}

// StreamMedia starts a download of an mxc:// URI that the caller streams
// on: unlike OpenMedia, nothing bounds the whole response (a large file
// takes as long as its reader takes), only the wait for the homeserver's
// answer, and the caller's context. Authenticated media first, then the
// older endpoint.
func (c *Connector) StreamMedia(ctx context.Context, uri id.ContentURIString) (*http.Response, error) {
	mxc, err := id.ParseContentURI(string(uri))
	if err != nil || mxc.IsEmpty() {
		return nil, fmt.Errorf("invalid media URI %q", uri)
	}
	resp, err := c.getMedia(ctx, c.streamClient, mautrix.ClientURLPath{"v1", "media", "download", mxc.Homeserver, mxc.FileID})
	var serr mediaStatusError
	if errors.As(err, &serr) && (serr.code == http.StatusNotFound || serr.code == http.StatusBadRequest || serr.code == http.StatusMethodNotAllowed) {
		// No authenticated media here: the older endpoint.
		resp, err = c.getMedia(ctx, c.streamClient, legacyMediaPath(mxc))
	}
	if err != nil {
		return nil, fmt.Errorf("failed to download %s: %w", uri, err)
	}
	return resp, nil
}

// streamClient makes the client of StreamMedia: the bot's transport with a
// bound on the wait for the response headers, and no overall timeout.
func streamClient(base http.RoundTripper) *http.Client {
	if base == nil {
		base = http.DefaultTransport
	}
	if t, ok := base.(*http.Transport); ok {
		t = t.Clone()
		t.ResponseHeaderTimeout = time.Minute
		base = t
	}
	return &http.Client{Transport: base}
}

// mediaStatusError is a media download the homeserver answered with
// something else than the file.
type mediaStatusError struct {
	code   int
	status string
}

func (e mediaStatusError) Error() string { return "media download answered " + e.status }

// getMedia downloads from a media endpoint as the bot with client; the
// caller reads and closes the body of what it returns.
func (c *Connector) getMedia(ctx context.Context, client *http.Client, path mautrix.PrefixableURLPath) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.Bot().BuildURL(path), nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+c.Appservice.ASToken)
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		return nil, mediaStatusError{code: resp.StatusCode, status: resp.Status}
	}
	return resp, nil
}

// legacyMediaPath is the download path of a file before authenticated
// media (Matrix 1.11).
func legacyMediaPath(mxc id.ContentURI) mautrix.PrefixableURLPath {
	return mautrix.MediaURLPath{"v3", "download", mxc.Homeserver, mxc.FileID}
}

// MaxUploadSize returns the homeserver's upload limit, 0 if it names none.
func (c *Connector) MaxUploadSize(ctx context.Context) int64 {
	resp, err := c.Bot().GetMediaConfig(ctx)
	if err != nil {
		return 0
	}
	return resp.UploadSize
}

func (c *Connector) downloadLegacy(ctx context.Context, mxc id.ContentURI) (*http.Response, error) {
	return c.getMedia(ctx, c.Bot().Client.Client, legacyMediaPath(mxc))
}

// UploadMediaStream stores content of a known length in the media
// repository as asUser while it is read from body. It is not retried: a
// stream cannot be sent twice.
func (c *Connector) UploadMediaStream(ctx context.Context, asUser id.UserID, body io.Reader, length int64, contentType, fileName string) (id.ContentURI, error) {
	resp, err := c.Intent(asUser).UploadMedia(ctx, mautrix.ReqUploadMedia{Content: io.LimitReader(body, length), ContentLength: length,
		ContentType: contentType, FileName: fileName})
	if err != nil {
		return id.ContentURI{}, fmt.Errorf("failed to upload media as %s: %w", asUser, err)
	}
	return resp.ContentURI, nil
}

// UploadMedia stores content in the media repository as asUser.
func (c *Connector) UploadMedia(ctx context.Context, asUser id.UserID, data []byte, contentType, fileName string) (id.ContentURI, error) {
	resp, err := c.Intent(asUser).UploadMedia(ctx, mautrix.ReqUploadMedia{ContentBytes: data, ContentType: contentType, FileName: fileName})
	if err != nil {
		return id.ContentURI{}, fmt.Errorf("failed to upload media as %s: %w", asUser, err)
	}
	return resp.ContentURI, nil
}

// SetPuppetAvatar sets a puppet's avatar; an empty URI removes it.
func (c *Connector) SetPuppetAvatar(ctx context.Context, puppet id.UserID, uri id.ContentURI) error {
	if err := c.Intent(puppet).SetAvatarURL(ctx, uri); err != nil {
		return fmt.Errorf("failed to set the avatar of %s: %w", puppet, err)
	}
	return nil
}

// Profile returns a user's global display name and avatar.
func (c *Connector) Profile(ctx context.Context, userID id.UserID) (string, id.ContentURIString, error) {
	resp, err := c.Bot().GetProfile(ctx, userID)
	if err != nil {
		return "", "", fmt.Errorf("failed to get the profile of %s: %w", userID, err)
	}
	return resp.DisplayName, resp.AvatarURL.CUString(), nil
}

// FoundUser is a result of SearchUsers.
type FoundUser struct {
	UserID      id.UserID
	DisplayName string
}

// SearchUsers asks the homeserver's user directory for users matching term,
// as the bot: the directory shows the users who share a room with it or are
// in a public room. The bridge's own users are left out.
func (c *Connector) SearchUsers(ctx context.Context, term string, limit int) ([]FoundUser, error) {
	resp, err := c.Bot().SearchUserDirectory(ctx, term, limit)
	if err != nil {
		return nil, fmt.Errorf("failed to search the user directory: %w", err)
	}
	var out []FoundUser
	for _, u := range resp.Results {
		if c.IsBridgeUser(u.UserID) {
			continue
		}
		name := u.DisplayName
		if spec, ok := u.Extra["display_name"].(string); ok && name == "" {
			// The spec's key; mautrix v0.32 reads only "displayname".
			name = spec
		}
		out = append(out, FoundUser{UserID: u.UserID, DisplayName: name})
	}
	return out, nil
}
