package bridge

import (
	"context"
	"errors"
	"io"
	"mime"
	"net/http"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/mxpp/mxpp/database"
	"github.com/mxpp/mxpp/msgconv"
)

// setupMedia prepares the links to Matrix files and the fetcher of XMPP
// files.
func (b *Bridge) setupMedia(ctx context.Context) error {
	cfg := b.Config.Bridge.Media
	key, err := b.DB.Secret(ctx, database.KeyMediaLinks)
	if err != nil {
		return err
	}
	base := cfg.PublicURL
	if base == "" {
		base = b.Config.Appservice.Address
	}
	b.mediaLinks = &msgconv.MediaLinks{Key: key, BaseURL: base, TTL: cfg.LinkTTL}
	if cfg.MaxSize > 0 {
		limit := cfg.MaxSize
		lctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		if hs := b.Matrix.MaxUploadSize(lctx); hs > 0 && hs < limit {
			limit = hs
		}
		cancel()
		b.fetcher = msgconv.NewFetcher(limit, cfg.AllowPrivateNetworks, 2*time.Minute)
	}
	return nil
}

// mediaLinkPath is the part of a media link's path that MediaLinks.Check
// reads: still percent-encoded, as Check decodes each part itself (the
// decoded r.URL.Path would decode a file name's "%25" twice).
func mediaLinkPath(r *http.Request) string {
	return strings.TrimPrefix(r.URL.EscapedPath(), msgconv.MediaPathPrefix)
}

// serveMedia streams a Matrix file to an XMPP user who has a signed link.
// Nothing is kept on disk. The response may not run as a page on the
// bridge's origin: it is sandboxed and never sniffed.
func (b *Bridge) serveMedia(w http.ResponseWriter, r *http.Request) {
	log := zerolog.Ctx(r.Context())
	file, err := b.mediaLinks.Check(mediaLinkPath(r))
	switch {
	case errors.Is(err, msgconv.ErrExpiredLink):
		http.Error(w, "This link has expired", http.StatusGone)
		return
	case err != nil:
		http.Error(w, "No such file", http.StatusNotFound)
		return
	}
	mxc, name := file.MXC, file.FileName
	resp, err := b.Matrix.StreamMedia(r.Context(), mxc.CUString())
	if err != nil {
		log.Info().Err(err).Stringer("mxc", mxc).Msg("Failed to stream a Matrix file")
		http.Error(w, "The file cannot be fetched from Matrix", http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	body := io.Reader(resp.Body)
	contentType := resp.Header.Get("Content-Type")
	if file.Encryption != nil {
		// A file of an encrypted room: the repository holds ciphertext, the
		// link the key. AES-CTR keeps the length.
		if err = file.Encryption.PrepareForDecryption(); err != nil {
			http.Error(w, "No such file", http.StatusNotFound)
			return
		}
		dec := file.Encryption.DecryptStream(resp.Body)
		defer dec.Close()
		body, contentType = dec, file.MimeType
	}
	mediaType, _, _ := mime.ParseMediaType(contentType)
	disposition := "attachment"
	switch strings.SplitN(mediaType, "/", 2)[0] {
	case "image", "video", "audio":
		disposition = "inline"
	}
	if contentType == "" {
		contentType = "application/octet-stream"
	}
	h := w.Header()
	h.Set("Content-Type", contentType)
	h.Set("Content-Disposition", mime.FormatMediaType(disposition, map[string]string{"filename": name}))
	h.Set("Content-Security-Policy", "sandbox; default-src 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "private, max-age=3600")
	if resp.ContentLength >= 0 {
		h.Set("Content-Length", resp.Header.Get("Content-Length"))
	}
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodHead {
		return
	}
	if _, err = io.Copy(w, body); err != nil {
		log.Debug().Err(err).Msg("Streaming a Matrix file was cut short")
	}
}
