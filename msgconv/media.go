package msgconv

import (
	"bytes"
	"context"
	"errors"
	"image"
	_ "image/gif"  // image sizes for m.image info
	_ "image/jpeg" // image sizes for m.image info
	_ "image/png"  // image sizes for m.image info
	"io"
	"strings"

	"github.com/rs/zerolog"
	"maunium.net/go/mautrix/crypto/attachment"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/mxpp/mxpp/xmpp"
)

// Converter holds what translating files needs: links to Matrix media for
// XMPP users, and the fetcher of files XMPP users share. Either may be
// nil, which turns that direction of files off (they go as text).
type Converter struct {
	MediaLinks *MediaLinks
	Fetcher    *Fetcher
}

// ErrMediaOff is returned by MatrixMedia when the bridge has no fetcher.
var ErrMediaOff = errors.New("fetching shared files is turned off")

// Uploader puts a file into the Matrix media repository as a user.
type Uploader interface {
	UploadMedia(ctx context.Context, asUser id.UserID, data []byte, contentType, fileName string) (id.ContentURI, error)
}

// StreamUploader is an Uploader that also takes a file as it comes, of a
// known length, without holding it whole.
type StreamUploader interface {
	Uploader
	UploadMediaStream(ctx context.Context, asUser id.UserID, body io.Reader, length int64, contentType, fileName string) (id.ContentURI, error)
}

// StreamAbove is the size from which a shared file whose length the server
// gave goes into the upload as it downloads, instead of whole: memory
// stays small for large files, while small ones keep the upload's retries
// (a stream cannot be sent twice).
const StreamAbove = 1 << 20

// MediaLink returns the link by which an XMPP message shares a file: an
// out-of-band URL (XEP-0066, as HTTP upload clients send it) or a file
// sharing source (XEP-0447) that is the whole body.
func MediaLink(msg *xmpp.Message) string {
	body := strings.TrimSpace(msg.Body)
	if msg.OOB != nil && msg.OOB.URL != "" && (body == msg.OOB.URL || body == "") {
		return msg.OOB.URL
	}
	if fs := msg.FileSharing; fs != nil {
		for _, src := range fs.Sources.URLs {
			if src.Target != "" && (body == src.Target || body == "") {
				return src.Target
			}
		}
	}
	return ""
}

// MatrixMedia fetches a file an XMPP user shared and uploads it to the
// media repository as the user's puppet, for an m.image, m.video, m.audio
// or m.file message; encrypted for a room with encryption on.
func (c *Converter) MatrixMedia(ctx context.Context, up Uploader, encrypted bool, puppet id.UserID, link string) (*event.MessageEventContent, error) {
	if c.Fetcher == nil {
		return nil, ErrMediaOff
	}
	f, err := c.Fetcher.open(ctx, link)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var cfg image.Config
	if strings.HasPrefix(f.contentType, "image/") {
		// From the file's head: the size is near the start of an image.
		cfg, _, _ = image.DecodeConfig(bytes.NewReader(f.head()))
	}
	var file *attachment.EncryptedFile
	uploadType := f.contentType
	if encrypted {
		// The media repository gets ciphertext; the key travels in the
		// (encrypted) event.
		file = attachment.NewEncryptedFile()
		uploadType = "application/octet-stream"
	}
	var uri id.ContentURI
	size := f.length
	if streamer, ok := up.(StreamUploader); ok && f.length > StreamAbove {
		var body io.Reader = f
		var enc io.Closer
		if file != nil {
			stream := file.EncryptStream(f)
			body, enc = stream, stream
		}
		if uri, err = streamer.UploadMediaStream(ctx, puppet, body, f.length, uploadType, f.fileName); err != nil {
			return nil, err
		}
		if enc != nil {
			enc.Close() // fills in the hash of what went out, for the event
		}
	} else {
		data, err := io.ReadAll(f)
		if err != nil {
			return nil, err
		}
		if file != nil {
			file.EncryptInPlace(data)
		}
		if uri, err = up.UploadMedia(ctx, puppet, data, uploadType, f.fileName); err != nil {
			return nil, err
		}
		size = int64(len(data))
	}
	content := &event.MessageEventContent{MsgType: event.MsgFile, Body: f.fileName, FileName: f.fileName,
		Info: &event.FileInfo{MimeType: f.contentType, Size: int(size)}}
	if file != nil {
		content.File = &event.EncryptedFileInfo{EncryptedFile: *file, URL: uri.CUString()}
	} else {
		content.URL = uri.CUString()
	}
	switch strings.SplitN(f.contentType, "/", 2)[0] {
	case "image":
		content.MsgType = event.MsgImage
		if cfg.Width > 0 {
			content.Info.Width, content.Info.Height = cfg.Width, cfg.Height
		}
	case "video":
		content.MsgType = event.MsgVideo
	case "audio":
		content.MsgType = event.MsgAudio
	}
	return content, nil
}

// IsMedia reports whether a Matrix message type carries a file.
func IsMedia(t event.MessageType) bool {
	switch t {
	case event.MsgImage, event.MsgFile, event.MsgVideo, event.MsgAudio:
		return true
	}
	return false
}

// MediaPayloads describes a Matrix file for XMPP: an out-of-band link
// (XEP-0066), which most clients show inline when it is also the body, and
// XEP-0447 metadata. The link goes through the bridge, since XMPP users
// cannot fetch authenticated Matrix media. caption is the text sent with
// the file, if any.
func (c *Converter) MediaPayloads(ctx context.Context, content *event.MessageEventContent) (link string, oob *xmpp.OOB, fs *xmpp.FileSharing, caption string) {
	if !IsMedia(content.MsgType) || (content.URL == "" && content.File == nil) || c.MediaLinks == nil {
		return "", nil, nil, ""
	}
	name := content.FileName
	if name == "" {
		name = content.Body
	} else if content.Body != content.FileName {
		caption = content.Body
	}
	var err error
	if content.File != nil {
		mimeType := ""
		if content.Info != nil {
			mimeType = content.Info.MimeType
		}
		link, err = c.MediaLinks.EncryptedURL(content.File, name, mimeType)
	} else {
		link, err = c.MediaLinks.URL(content.URL, name)
	}
	if err != nil {
		zerolog.Ctx(ctx).Debug().Err(err).Msg("Cannot link a Matrix file for XMPP")
		return "", nil, nil, ""
	}
	oob = &xmpp.OOB{URL: link, Desc: caption}
	fs = &xmpp.FileSharing{Disposition: "inline", File: xmpp.FileMetadata{Name: name, Desc: caption}}
	if info := content.Info; info != nil {
		fs.File.MediaType, fs.File.Size, fs.File.Width, fs.File.Height = info.MimeType, int64(info.Size), info.Width, info.Height
	}
	fs.Sources.URLs = []xmpp.URLData{{Target: link}}
	return link, oob, fs, caption
}
