package bmc

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"sync"
	"time"
)

// ctxTransport makes gofish's HTTP requests honour the caller's context.
// gofish (as bmclib calls it) sends every request with context.Background(),
// so without this a cancelled activity would wait for the HTTP timeout.
// Client.call binds the caller's ctx for the duration of one bmclib call.
type ctxTransport struct {
	base *http.Transport

	mu  sync.Mutex
	ctx context.Context // nil when no call is in progress
}

func newCtxTransport() *ctxTransport {
	return &ctxTransport{base: &http.Transport{
		// BMCs present self-signed certificates; bmclib's default does the same.
		TLSClientConfig:       &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // BMC certificates are self-signed
		DialContext:           (&net.Dialer{Timeout: 10 * time.Second}).DialContext,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: 30 * time.Second,
		DisableKeepAlives:     true, // gofish closes every connection anyway (req.Close)
	}}
}

func (t *ctxTransport) bind(ctx context.Context) {
	t.mu.Lock()
	t.ctx = ctx
	t.mu.Unlock()
}

// RoundTrip sends req, cancelled when either its own context or the bound
// call context is done.
func (t *ctxTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	t.mu.Lock()
	call := t.ctx
	t.mu.Unlock()
	if call == nil {
		return t.base.RoundTrip(req)
	}
	ctx, cancel := context.WithCancelCause(req.Context())
	stop := context.AfterFunc(call, func() { cancel(context.Cause(call)) })
	resp, err := t.base.RoundTrip(req.WithContext(ctx))
	if err != nil {
		stop()
		cancel(nil)
		return nil, err
	}
	resp.Body = &releaseBody{ReadCloser: resp.Body, release: func() { stop(); cancel(nil) }}
	return resp, nil
}

// releaseBody releases the merged context once the body is closed.
type releaseBody struct {
	io.ReadCloser
	once    sync.Once
	release func()
}

func (b *releaseBody) Close() error {
	err := b.ReadCloser.Close()
	b.once.Do(b.release)
	return err
}
