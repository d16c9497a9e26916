package bridge

import (
	"net/http/httptest"
	"testing"
	"time"

	"github.com/mxpp/mxpp/msgconv"
)

// TestMediaLinkPath: a link the bridge hands out is found again when it is
// requested, whatever the file is called.
func TestMediaLinkPath(t *testing.T) {
	ml := &msgconv.MediaLinks{Key: []byte("k"), BaseURL: "https://bridge.example/", TTL: time.Hour}
	for _, name := range []string{"cat.png", "100% sure.pdf", "a%2Fb.txt", "café ü.jpg", "x?y#z.txt"} {
		link, err := ml.URL("mxc://hs.test/abc", name)
		if err != nil {
			t.Fatal(err)
		}
		req := httptest.NewRequest("GET", link, nil)
		file, err := ml.Check(mediaLinkPath(req))
		if err != nil || file.FileName != name || file.MXC.FileID != "abc" {
			t.Errorf("%q: link %s found %+v, %v", name, link, file, err)
		}
	}
}
