package msgconv

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"maunium.net/go/mautrix/crypto/attachment"
	"maunium.net/go/mautrix/event"
)

func TestPublicAddr(t *testing.T) {
	for addr, want := range map[string]bool{
		"93.184.216.34": true, "2606:2800:220:1:248:1893:25c8:1946": true,
		"127.0.0.1": false, "10.1.2.3": false, "172.16.0.1": false, "192.168.1.1": false, "169.254.169.254": false,
		"100.64.0.1": false, "0.0.0.0": false, "::1": false, "fe80::1": false, "fc00::1": false, "::ffff:127.0.0.1": false,
		"224.0.0.1": false, "255.255.255.255": false, "64:ff9b::7f00:1": false, "64:ff9b::a00:1": false,
	} {
		if got := PublicAddr(netip.MustParseAddr(addr)); got != want {
			t.Errorf("PublicAddr(%s) = %v; want %v", addr, got, want)
		}
	}
}

func TestFetcher(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/cat.png":
			w.Header().Set("Content-Type", "image/png")
			w.Write([]byte("\x89PNG\r\n\x1a\nxxxx"))
		case "/big":
			w.Write([]byte(strings.Repeat("x", 2000)))
		case "/redirect":
			http.Redirect(w, r, "file:///etc/passwd", http.StatusFound)
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	ctx := context.Background()

	// The default refuses the test server: it is on loopback.
	strict := NewFetcher(1000, false, 5*time.Second)
	if _, err := strict.Fetch(ctx, srv.URL+"/cat.png"); !errors.Is(err, ErrFetchAddress) {
		t.Errorf("fetch from loopback: %v; want ErrFetchAddress", err)
	}
	for _, link := range []string{"file:///etc/passwd", "ftp://example.org/x", "gopher://x", "not a url"} {
		if _, err := strict.Fetch(ctx, link); err == nil {
			t.Errorf("fetch of %q succeeded", link)
		}
	}

	f := NewFetcher(1000, true, 5*time.Second)
	got, err := f.Fetch(ctx, srv.URL+"/cat.png")
	if err != nil || got.ContentType != "image/png" || got.FileName != "cat.png" || len(got.Data) != 12 {
		t.Errorf("fetch = %+v, %v", got, err)
	}
	if _, err = f.Fetch(ctx, srv.URL+"/big"); !errors.Is(err, ErrFetchTooBig) {
		t.Errorf("fetch of a big file: %v; want ErrFetchTooBig", err)
	}
	if _, err = f.Fetch(ctx, srv.URL+"/missing"); err == nil {
		t.Error("a 404 was fetched")
	}
	if _, err = f.Fetch(ctx, srv.URL+"/redirect"); err == nil {
		t.Error("a redirect to file:// was followed")
	}
}

func TestMediaLinks(t *testing.T) {
	ml := &MediaLinks{Key: []byte("k"), BaseURL: "https://bridge.example/", TTL: time.Hour}
	link, err := ml.URL("mxc://hs.test/abc123", "cat picture.png")
	if err != nil || !strings.HasPrefix(link, "https://bridge.example"+MediaPathPrefix) {
		t.Fatalf("URL = %q, %v", link, err)
	}
	rest := strings.TrimPrefix(link, "https://bridge.example"+MediaPathPrefix)
	f, err := ml.Check(rest)
	if err != nil || f.MXC.String() != "mxc://hs.test/abc123" || f.FileName != "cat picture.png" || f.Encryption != nil {
		t.Fatalf("Check = %+v, %v", f, err)
	}
	// Any change breaks the signature. (The signature's first character
	// is replaced by another: one time in 64 it was an 'x' already.)
	other0 := "x"
	if rest[0] == 'x' {
		other0 = "y"
	}
	for _, bad := range []string{
		strings.Replace(rest, "abc123", "abc124", 1),
		strings.Replace(rest, "hs.test", "evil.test", 1),
		other0 + rest[1:],
		rest + "/more",
		"",
	} {
		if _, err := ml.Check(bad); !errors.Is(err, ErrBadLink) {
			t.Errorf("Check(%q) = %v; want ErrBadLink", bad, err)
		}
	}
	other := &MediaLinks{Key: []byte("other"), BaseURL: ml.BaseURL, TTL: time.Hour}
	if _, err := other.Check(rest); !errors.Is(err, ErrBadLink) {
		t.Error("a link verified with another key")
	}
	expired := &MediaLinks{Key: []byte("k"), BaseURL: ml.BaseURL, TTL: -time.Minute}
	old, _ := expired.URL("mxc://hs.test/abc123", "x")
	if _, err := ml.Check(strings.TrimPrefix(old, "https://bridge.example"+MediaPathPrefix)); !errors.Is(err, ErrExpiredLink) {
		t.Errorf("expired link: %v", err)
	}

	// A file of an encrypted room: the link carries its key and type.
	file := attachment.NewEncryptedFile()
	plain := []byte("secret picture")
	cipher := file.Encrypt(plain)
	link, err = ml.EncryptedURL(&event.EncryptedFileInfo{EncryptedFile: *file, URL: "mxc://hs.test/enc1"}, "secret.png", "image/png")
	if err != nil {
		t.Fatal(err)
	}
	rest = strings.TrimPrefix(link, "https://bridge.example"+MediaPathPrefix)
	f, err = ml.Check(rest)
	if err != nil || f.MXC.String() != "mxc://hs.test/enc1" || f.MimeType != "image/png" || f.Encryption == nil {
		t.Fatalf("Check of an encrypted file's link = %+v, %v", f, err)
	}
	if err = f.Encryption.PrepareForDecryption(); err != nil {
		t.Fatal(err)
	}
	if got, err := f.Encryption.Decrypt(cipher); err != nil || string(got) != string(plain) {
		t.Errorf("the linked key decrypts to %q, %v", got, err)
	}
	parts := strings.Split(rest, "/")
	parts[5] = parts[5][:len(parts[5])-2] + "AA"
	if _, err := ml.Check(strings.Join(parts, "/")); !errors.Is(err, ErrBadLink) {
		t.Errorf("a link with a changed key: %v; want ErrBadLink", err)
	}
}
