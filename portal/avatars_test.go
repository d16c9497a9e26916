package portal

import (
	"bytes"
	"context"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/rs/zerolog"
	"maunium.net/go/mautrix/id"
)

// TestAvatarImages: a burst of vCard requests for one avatar costs one
// download; the image is kept for the next ones, and the images kept stay
// within their byte budget, the oldest going first.
func TestAvatarImages(t *testing.T) {
	var downloads atomic.Int32
	release := make(chan struct{})
	a := NewAvatars(func(_ context.Context, uri id.ContentURIString, _ int64) ([]byte, string, error) {
		downloads.Add(1)
		if uri == "mxc://hs.test/slow" {
			<-release
		}
		return bytes.Repeat([]byte{'x'}, MaxAvatarBytes), "image/png", nil
	}, zerolog.Nop())
	ctx := context.Background()
	var wg sync.WaitGroup
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if photo, err := a.Photo(ctx, "mxc://hs.test/slow"); err != nil || photo == nil {
				t.Errorf("Photo = %v, %v", photo, err)
			}
		}()
	}
	close(release)
	wg.Wait()
	if _, err := a.Photo(ctx, "mxc://hs.test/slow"); err != nil {
		t.Fatal(err)
	}
	if n := downloads.Load(); n != 1 {
		t.Errorf("21 requests for one avatar made %d downloads; want 1", n)
	}
	if h, ok := a.Hash("mxc://hs.test/slow"); !ok || h == "" {
		t.Error("the hash of a downloaded avatar is not known")
	}
	// More images than the budget holds: the first goes.
	for i := range avatarCacheBytes/MaxAvatarBytes + 1 {
		if _, err := a.Photo(ctx, id.ContentURIString("mxc://hs.test/"+string(rune('a'+i)))); err != nil {
			t.Fatal(err)
		}
	}
	a.mu.Lock()
	stored, kept := a.stored, a.images["mxc://hs.test/slow"] != nil
	a.mu.Unlock()
	if stored > avatarCacheBytes || kept {
		t.Errorf("%d bytes kept (budget %d), oldest kept: %v", stored, avatarCacheBytes, kept)
	}
}
