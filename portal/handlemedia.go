package portal

import (
	"bytes"
	"context"
	"errors"
	"image"
	_ "image/gif"  // image sizes for m.image info
	_ "image/jpeg" // image sizes for m.image info
	_ "image/png"  // image sizes for m.image info
	"strings"

	"maunium.net/go/mautrix/crypto/attachment"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/mxpp/mxpp/xmpp"
)

// errMediaOff is returned when the bridge has no fetcher configured.
var errMediaOff = errors.New("fetching shared files is turned off")

// mediaLink returns the link by which an XMPP message shares a file: an
// out-of-band URL (XEP-0066, as HTTP upload clients send it) or a file
// sharing source (XEP-0447) that is the whole body.
func mediaLink(msg *xmpp.Message) string {
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

// matrixMedia fetches a file an XMPP user shared and uploads it to the
// media repository as the user's puppet, for an m.image, m.video, m.audio
// or m.file message.
func (p *Portal) matrixMedia(ctx context.Context, puppet id.UserID, link string) (*event.MessageEventContent, error) {
	if p.deps.Fetcher == nil {
		return nil, errMediaOff
	}
	f, err := p.deps.Fetcher.Fetch(ctx, link)
	if err != nil {
		return nil, err
	}
	var cfg image.Config
	if strings.HasPrefix(f.ContentType, "image/") {
		// Before encryption, which works in place.
		cfg, _, _ = image.DecodeConfig(bytes.NewReader(f.Data))
	}
	var file *attachment.EncryptedFile
	uploadType := f.ContentType
	if p.deps.Matrix.IsEncrypted(ctx, p.RoomID) {
		// The media repository gets ciphertext; the key travels in the
		// (encrypted) event.
		file = attachment.NewEncryptedFile()
		file.EncryptInPlace(f.Data)
		uploadType = "application/octet-stream"
	}
	uri, err := p.deps.Matrix.UploadMedia(ctx, puppet, f.Data, uploadType, f.FileName)
	if err != nil {
		return nil, err
	}
	content := &event.MessageEventContent{MsgType: event.MsgFile, Body: f.FileName, FileName: f.FileName,
		Info: &event.FileInfo{MimeType: f.ContentType, Size: len(f.Data)}}
	if file != nil {
		content.File = &event.EncryptedFileInfo{EncryptedFile: *file, URL: uri.CUString()}
	} else {
		content.URL = uri.CUString()
	}
	switch strings.SplitN(f.ContentType, "/", 2)[0] {
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

func isMedia(t event.MessageType) bool {
	switch t {
	case event.MsgImage, event.MsgFile, event.MsgVideo, event.MsgAudio:
		return true
	}
	return false
}

// mediaPayloads describes a Matrix file for XMPP: an out-of-band link
// (XEP-0066), which most clients show inline when it is also the body, and
// XEP-0447 metadata. The link goes through the bridge, since XMPP users
// cannot fetch authenticated Matrix media.
func (p *Portal) mediaPayloads(content *event.MessageEventContent) (link string, oob *xmpp.OOB, fs *xmpp.FileSharing, caption string) {
	if !isMedia(content.MsgType) || (content.URL == "" && content.File == nil) || p.deps.MediaLinks == nil {
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
		link, err = p.deps.MediaLinks.EncryptedURL(content.File, name, mimeType)
	} else {
		link, err = p.deps.MediaLinks.URL(content.URL, name)
	}
	if err != nil {
		p.log.Debug().Err(err).Msg("Cannot link a Matrix file for XMPP")
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
