package msgconv

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"path"
	"sync"
	"syscall"
	"time"
)

// Errors of Fetcher.Fetch.
var (
	ErrFetchScheme  = errors.New("only http and https links are fetched")
	ErrFetchAddress = errors.New("the link points to a private, loopback or link-local address")
	ErrFetchTooBig  = errors.New("the file is larger than allowed")
)

// Fetcher downloads files that XMPP users link to (XEP-0066, XEP-0363), so
// that Matrix users get them as uploads. It fetches only http(s), refuses
// addresses inside the bridge's network unless allowed, so that the bridge
// cannot be made to reach internal services (SSRF), and bounds size and time.
type Fetcher struct {
	MaxBytes int64
	client   *http.Client
	// slots bounds the fetches under way at once, across all rooms: each
	// holds up to MaxBytes in memory.
	slots chan struct{}
}

// MaxFetches bounds the files fetched at once; the others wait.
const MaxFetches = 8

// NewFetcher returns a fetcher. The address check runs on the address
// actually dialed, after name resolution and on every redirect, so that a
// name that resolves to an internal address is refused too.
func NewFetcher(maxBytes int64, allowPrivate bool, timeout time.Duration) *Fetcher {
	dialer := &net.Dialer{
		Timeout: 10 * time.Second,
		Control: func(_, address string, _ syscall.RawConn) error {
			host, _, err := net.SplitHostPort(address)
			if err != nil {
				return err
			}
			ip, err := netip.ParseAddr(host)
			if err != nil {
				return fmt.Errorf("unparseable address %q", host)
			}
			if !allowPrivate && !PublicAddr(ip) {
				return ErrFetchAddress
			}
			return nil
		},
	}
	transport := &http.Transport{
		DialContext:            dialer.DialContext,
		Proxy:                  nil, // a proxy would dial for us, past the check
		TLSHandshakeTimeout:    10 * time.Second,
		ResponseHeaderTimeout:  20 * time.Second,
		MaxResponseHeaderBytes: 64 << 10,
		MaxIdleConns:           4,
		IdleConnTimeout:        30 * time.Second,
	}
	return &Fetcher{MaxBytes: maxBytes, slots: make(chan struct{}, MaxFetches), client: &http.Client{
		Transport: transport,
		Timeout:   timeout,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) >= 5 {
				return errors.New("too many redirects")
			}
			if req.URL.Scheme != "http" && req.URL.Scheme != "https" {
				return ErrFetchScheme
			}
			return nil
		},
	}}
}

// PublicAddr reports whether an address is on the public internet: not
// loopback, private, link-local, shared (CGNAT), multicast or unspecified.
func PublicAddr(ip netip.Addr) bool {
	ip = ip.Unmap()
	if !ip.IsValid() || ip.IsLoopback() || ip.IsPrivate() || ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast() ||
		ip.IsInterfaceLocalMulticast() || ip.IsMulticast() || ip.IsUnspecified() {
		return false
	}
	for _, p := range nonPublic {
		if p.Contains(ip) {
			return false
		}
	}
	return true
}

var nonPublic = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),
	netip.MustParsePrefix("100.64.0.0/10"),
	netip.MustParsePrefix("192.0.0.0/24"),
	netip.MustParsePrefix("198.18.0.0/15"),
	netip.MustParsePrefix("240.0.0.0/4"),
	netip.MustParsePrefix("64:ff9b::/96"), // NAT64: an IPv4 address behind a translator
	netip.MustParsePrefix("64:ff9b:1::/48"),
}

// fetchedFile is a download under way: the body, at most MaxBytes of it,
// with what the server said of it. Close ends it and frees its slot.
type fetchedFile struct {
	body        *bufio.Reader
	closer      io.Closer
	release     func()
	length      int64 // -1 when the server did not say
	contentType string
	fileName    string
}

func (f *fetchedFile) Read(p []byte) (int, error) { return f.body.Read(p) }

func (f *fetchedFile) Close() error {
	err := f.closer.Close()
	f.release()
	return err
}

// sniffSize is how much of a file is looked at before it goes on: its
// type (http.DetectContentType reads 512 bytes) and an image's size.
const sniffSize = 64 << 10

// head returns up to sniffSize bytes of the file without consuming them.
func (f *fetchedFile) head() []byte {
	b, _ := f.body.Peek(sniffSize)
	return b
}

// open starts downloading a link, waiting for a slot (MaxFetches).
func (f *Fetcher) open(ctx context.Context, link string) (*fetchedFile, error) {
	u, err := url.Parse(link)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("invalid link: %q", link)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, ErrFetchScheme
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, err
	}
	release := func() {}
	if f.slots != nil {
		select {
		case f.slots <- struct{}{}:
			release = sync.OnceFunc(func() { <-f.slots })
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	resp, err := f.client.Do(req)
	if err != nil {
		release()
		return nil, err
	}
	fail := func(err error) (*fetchedFile, error) {
		resp.Body.Close()
		release()
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return fail(fmt.Errorf("the server answered %s", resp.Status))
	}
	if resp.ContentLength > f.MaxBytes {
		return fail(fmt.Errorf("%w (%d bytes)", ErrFetchTooBig, resp.ContentLength))
	}
	file := &fetchedFile{body: bufio.NewReaderSize(&limitedReader{r: resp.Body, left: f.MaxBytes}, sniffSize),
		closer: resp.Body, release: release, length: resp.ContentLength}
	file.contentType = resp.Header.Get("Content-Type")
	if file.contentType == "" || file.contentType == "application/octet-stream" {
		file.contentType = http.DetectContentType(file.head())
	}
	file.fileName = path.Base(resp.Request.URL.Path)
	if file.fileName == "." || file.fileName == "/" || file.fileName == "" {
		file.fileName = "file"
	}
	return file, nil
}

// limitedReader fails with ErrFetchTooBig once more than left bytes came.
type limitedReader struct {
	r    io.Reader
	left int64
}

func (l *limitedReader) Read(p []byte) (int, error) {
	if int64(len(p)) > l.left+1 {
		p = p[:l.left+1]
	}
	n, err := l.r.Read(p)
	if l.left -= int64(n); l.left < 0 {
		return 0, ErrFetchTooBig
	}
	return n, err
}

// Fetch downloads a link whole.
func (f *Fetcher) Fetch(ctx context.Context, link string) (*MediaFetched, error) {
	file, err := f.open(ctx, link)
	if err != nil {
		return nil, err
	}
	defer file.Close()
	data, err := io.ReadAll(file)
	if err != nil {
		return nil, err
	}
	return &MediaFetched{Data: data, ContentType: file.contentType, FileName: file.fileName}, nil
}
