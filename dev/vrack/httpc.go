package vrack

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"
)

// newHTTPClient returns the HTTP client of one boot: connections from local
// (nil: any), no proxy, no overall timeout (images are large; the boot's
// context bounds every request).
func newHTTPClient(local net.IP) *http.Client {
	d := &net.Dialer{Timeout: 5 * time.Second}
	if local != nil {
		d.LocalAddr = &net.TCPAddr{IP: local}
	}
	return &http.Client{Transport: &http.Transport{
		DialContext:           d.DialContext,
		ResponseHeaderTimeout: 30 * time.Second,
		MaxIdleConnsPerHost:   2,
		IdleConnTimeout:       10 * time.Second,
		DisableCompression:    true,
	}}
}

// get fetches url and streams its body to w; it returns the bytes copied.
// Any status but 200 is an error.
func get(ctx context.Context, c *http.Client, url string, w io.Writer) (int64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("User-Agent", "rackflow-vrack")
	resp, err := c.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return 0, fmt.Errorf("GET %s: HTTP %d: %s", url, resp.StatusCode, trimBody(msg))
	}
	n, err := io.Copy(w, resp.Body)
	if err != nil {
		return n, fmt.Errorf("GET %s: after %d bytes: %w", url, n, err)
	}
	if resp.ContentLength >= 0 && n != resp.ContentLength {
		return n, fmt.Errorf("GET %s: got %d bytes, Content-Length %d", url, n, resp.ContentLength)
	}
	return n, nil
}

func trimBody(b []byte) string {
	s := string(b)
	for len(s) > 0 && (s[len(s)-1] == '\n' || s[len(s)-1] == '\r') {
		s = s[:len(s)-1]
	}
	return s
}
