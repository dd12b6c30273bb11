package vrack

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/rackflow/rackflow/netboot"
)

// checkInAttempts bounds the check-in POSTs (retried on network errors and
// 5xx answers, like the agent).
const checkInAttempts = 3

// runAgent plays the rackflow agent booted with the kernel command line
// args, from the node's address local (nil: any): it downloads the image
// (through the swarm when the arguments carry a torrent, else over HTTP)
// through sha256, compares the digest and checks in (subject to the node's
// fault). It returns the phase the node ends in and, after a swarm
// download, a function that keeps seeding until its time is up (nil
// otherwise).
func (n *Node) runAgent(ctx context.Context, gen uint64, hc *http.Client, local net.IP, args []string) (Phase, func(context.Context)) {
	a, err := netboot.ParseAgentArgs(args)
	if !n.step(gen, StepAgent, err, nil, "run", a.Run) || err != nil {
		return PhaseFailed, nil
	}
	ci := netboot.CheckIn{Node: a.Node, Run: a.Run, Token: a.Token}
	var seed func(context.Context)
	if n.spec.Fault == FaultAgentError {
		ci.Status, ci.Message = netboot.CheckInError, "injected fault: agent-error"
	} else {
		var digest string
		var size int64
		var attrs []any
		if a.TorrentURL != "" {
			var res swarmResult
			res, err = swarmImage(ctx, hc, local, a)
			digest, size = res.digest, res.size
			if res.seed != nil {
				seed = func(ctx context.Context) {
					why := res.seed(ctx)
					n.step(gen, StepSeeded, nil, func(s *NodeState) { s.SeedStop = why }, "reason", why, "torrent", a.TorrentURL)
				}
			}
			attrs = []any{"transport", "swarm", "torrent", a.TorrentURL, "from_peers", res.fromPeers,
				"from_web_seeds", res.fromWebSeeds, "bad_pieces", res.badPieces, "elapsed", res.elapsed}
		} else {
			digest, size, err = imageDigest(ctx, hc, a.ImageURL)
			attrs = []any{"transport", "http"}
		}
		if err == nil && digest != a.Digest {
			err = fmt.Errorf("digest mismatch: %s is %s, want %s", a.ImageURL, digest, a.Digest)
		}
		if ctx.Err() != nil {
			if seed != nil {
				seed(ctx)
			}
			return PhaseFailed, nil
		}
		n.step(gen, StepImage, err, func(s *NodeState) { s.SeedStop = "" }, append([]any{"url", a.ImageURL, "bytes", size, "digest", digest}, attrs...)...)
		ci.Digest = digest
		switch {
		case err != nil:
			ci.Status, ci.Message = netboot.CheckInError, err.Error()
			if size == 0 {
				ci.Digest = ""
			}
		case n.spec.Fault == FaultBadDigest:
			ci.Status, ci.Digest = netboot.CheckInOK, wrongDigest(digest)
		default:
			ci.Status = netboot.CheckInOK
		}
	}
	if n.spec.Fault == FaultNoCheckIn {
		n.step(gen, StepCheckIn, ErrCheckInWithheld, nil, "run", a.Run)
		return PhaseUp, seed
	}
	res, err := n.checkIn(ctx, hc, a.CheckInURL, ci)
	if ctx.Err() != nil {
		return PhaseFailed, seed
	}
	n.step(gen, StepCheckIn, err, func(s *NodeState) {
		s.CheckIns++
		s.LastCheckIn = &res
	}, "run", a.Run, "status", ci.Status, "http", res.HTTPStatus)
	if err != nil {
		return PhaseFailed, seed
	}
	return PhaseUp, seed
}

// imageDigest streams url through sha256 and returns "sha256:<hex>" and the
// size.
func imageDigest(ctx context.Context, hc *http.Client, url string) (string, int64, error) {
	h := sha256.New()
	size, err := get(ctx, hc, url, h)
	return "sha256:" + hex.EncodeToString(h.Sum(nil)), size, err
}

// wrongDigest is a well-formed digest that is not digest.
func wrongDigest(digest string) string {
	sum := sha256.Sum256([]byte("bad-digest:" + digest))
	return "sha256:" + hex.EncodeToString(sum[:])
}

// checkIn posts c as JSON to url. A 2xx answer is success; 4xx is final;
// network errors and 5xx are retried.
func (n *Node) checkIn(ctx context.Context, hc *http.Client, url string, c netboot.CheckIn) (CheckInResult, error) {
	res := CheckInResult{Run: c.Run, Status: c.Status, Digest: c.Digest, Message: c.Message}
	body, err := json.Marshal(c)
	if err != nil {
		return res, err
	}
	for attempt := 1; ; attempt++ {
		res.Time = time.Now()
		status, err := postJSON(ctx, hc, url, body)
		res.HTTPStatus = status
		switch {
		case err == nil && status/100 == 2:
			return res, nil
		case err == nil && status < 500:
			return res, fmt.Errorf("check-in refused: HTTP %d", status)
		case err == nil:
			err = fmt.Errorf("check-in failed: HTTP %d", status)
		}
		if attempt == checkInAttempts || ctx.Err() != nil {
			return res, ctxOr(ctx, err)
		}
		n.log.Debug("vrack check-in retry", "attempt", attempt, "err", err)
		select {
		case <-time.After(time.Duration(attempt) * 500 * time.Millisecond):
		case <-ctx.Done():
			return res, ctx.Err()
		}
	}
}

// postJSON posts body and returns the HTTP status (0 with an error when no
// answer came).
func postJSON(ctx context.Context, hc *http.Client, url string, body []byte) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "rackflow-vrack")
	resp, err := hc.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	return resp.StatusCode, nil
}
