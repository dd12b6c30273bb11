package swarm

import (
	"context"
	"io"
	"net/http"
	"time"
)

// Reasons KeepSeeding returns.
const (
	StopContext   = "context"   // ctx ended (power off, agent exit)
	StopTime      = "time"      // the seeding time was up
	StopWithdrawn = "withdrawn" // the .torrent is gone: the export was withdrawn
)

// DefaultWithdrawPoll is how often KeepSeeding checks the .torrent.
const DefaultWithdrawPoll = 15 * time.Second

// KeepSeeding blocks while a node seeds after its download: until ctx
// ends, d has passed, or the .torrent at torrentURL is withdrawn (HTTP 404
// or 410, checked with a HEAD request every poll; 0 → DefaultWithdrawPoll)
// because the netboot service no longer exports the image for this node.
// Other answers and network errors keep it seeding. It returns why it
// stopped: StopContext, StopTime or StopWithdrawn.
func KeepSeeding(ctx context.Context, hc *http.Client, torrentURL string, d, poll time.Duration) string {
	if poll <= 0 {
		poll = DefaultWithdrawPoll
	}
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	tick := time.NewTicker(poll)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return StopContext
		case <-deadline.C:
			return StopTime
		case <-tick.C:
			if withdrawn(ctx, hc, torrentURL, poll) {
				return StopWithdrawn
			}
		}
	}
}

func withdrawn(ctx context.Context, hc *http.Client, url string, timeout time.Duration) bool {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodHead, url, nil)
	if err != nil {
		return false
	}
	resp, err := hc.Do(req)
	if err != nil {
		return false
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusGone
}
