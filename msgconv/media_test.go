package msgconv

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"image"
	"image/png"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
)

// recordingUploader keeps what was uploaded, and how.
type recordingUploader struct {
	data     []byte
	streamed bool
	length   int64
}

func (u *recordingUploader) UploadMedia(_ context.Context, _ id.UserID, data []byte, _, _ string) (id.ContentURI, error) {
	u.data, u.streamed = bytes.Clone(data), false
	return id.ContentURI{Homeserver: "hs.test", FileID: "up"}, nil
}

// streamingUploader also takes streams.
type streamingUploader struct{ recordingUploader }

func (u *streamingUploader) UploadMediaStream(_ context.Context, _ id.UserID, body io.Reader, length int64, _, _ string) (id.ContentURI, error) {
	data, err := io.ReadAll(body)
	if err != nil {
		return id.ContentURI{}, err
	}
	u.data, u.streamed, u.length = data, true, length
	return id.ContentURI{Homeserver: "hs.test", FileID: "up"}, nil
}

// TestMatrixMediaStreams: a shared file larger than StreamAbove whose size
// the server gave goes into the upload as it downloads, encrypted on the
// way for an encrypted room (its hash in the event); smaller files, files
// of unknown size and uploaders that cannot stream take the whole file.
// The image's size comes from its head either way, and the size limit
// holds for a file that does not say its size.
func TestMatrixMediaStreams(t *testing.T) {
	var pic bytes.Buffer
	if err := png.Encode(&pic, image.NewGray(image.Rect(0, 0, 10, 20))); err != nil {
		t.Fatal(err)
	}
	big := append(bytes.Clone(pic.Bytes()), bytes.Repeat([]byte{0}, 3<<20)...)
	small := pic.Bytes()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body := small
		if r.URL.Path != "/small.png" {
			body = big
		}
		w.Header().Set("Content-Type", "image/png")
		if r.URL.Path == "/unsized.png" {
			// Flushed at once: sent chunked, without a length.
			w.(http.Flusher).Flush()
		} else {
			w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		}
		w.Write(body)
	}))
	defer srv.Close()
	ctx := context.Background()
	c := &Converter{Fetcher: NewFetcher(int64(len(big)), true, 10*time.Second)}

	for _, tc := range []struct {
		name       string
		path       string
		stream     bool // the uploader can stream
		encrypted  bool
		want       []byte
		wantStream bool
	}{
		{"large", "/big.png", true, false, big, true},
		{"large, encrypted", "/big.png", true, true, big, true},
		{"small", "/small.png", true, false, small, false},
		{"unsized", "/unsized.png", true, false, big, false},
		{"no stream uploads", "/big.png", false, true, big, false},
	} {
		var up Uploader
		rec := &streamingUploader{}
		if tc.stream {
			up = rec
		} else {
			up = &rec.recordingUploader
		}
		content, err := c.MatrixMedia(ctx, up, tc.encrypted, "@p:hs.test", srv.URL+tc.path)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if rec.streamed != tc.wantStream || tc.wantStream && rec.length != int64(len(tc.want)) {
			t.Errorf("%s: streamed %v (length %d); want %v", tc.name, rec.streamed, rec.length, tc.wantStream)
		}
		got := rec.data
		if tc.encrypted {
			if content.File == nil || content.File.Hashes.SHA256 == "" {
				t.Fatalf("%s: %+v has no encrypted file with its hash", tc.name, content)
			}
			// As a Matrix client reads it: from the event's JSON.
			raw, _ := json.Marshal(content.File)
			var file event.EncryptedFileInfo
			if err = json.Unmarshal(raw, &file); err != nil {
				t.Fatal(err)
			}
			got = bytes.Clone(rec.data)
			if err = file.DecryptInPlace(got); err != nil {
				t.Fatalf("%s: the upload does not decrypt: %v", tc.name, err)
			}
		}
		if !bytes.Equal(got, tc.want) {
			t.Errorf("%s: uploaded %d bytes; want the file's %d", tc.name, len(got), len(tc.want))
		}
		if content.MsgType != event.MsgImage || content.Info.Width != 10 || content.Info.Height != 20 || content.Info.Size != len(tc.want) {
			t.Errorf("%s: content %+v; want an image of 10×20, %d bytes", tc.name, content.Info, len(tc.want))
		}
	}

	tight := &Converter{Fetcher: NewFetcher(int64(len(big))-1, true, 10*time.Second)}
	for _, path := range []string{"/big.png", "/unsized.png"} {
		if _, err := tight.MatrixMedia(ctx, &streamingUploader{}, false, "@p:hs.test", srv.URL+path); !errors.Is(err, ErrFetchTooBig) {
			t.Errorf("%s over the limit: %v; want ErrFetchTooBig", path, err)
		}
	}
}
