package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"

	"github.com/cenkalti/backoff/v5"
	"github.com/rackflow/rackflow/netboot"
)

// maxAnswerBody bounds how much of a check-in answer is read.
const maxAnswerBody = 64 << 10

// checkInPoster posts the agent's check-in (netboot.CheckIn as JSON) to
// the netboot service.
type checkInPoster struct {
	client *http.Client
	retry  retryPolicy // network errors and 5xx answers
	con    *console    // retry lines; nil = silent
}

// post sends c to url and returns the HTTP status of the final answer. A
// 2xx answer is success. Network errors and 5xx answers are retried per
// p.retry; any other answer is final and its error names the status and
// the server's message. Errors start with "check-in:".
func (p *checkInPoster) post(ctx context.Context, url string, c netboot.CheckIn) (int, error) {
	body, err := json.Marshal(c)
	if err != nil {
		return 0, fmt.Errorf("check-in: %w", err)
	}
	notify := p.retry.reporter(p.con, "check-in")
	status, err := backoff.Retry(ctx, func() (int, error) { return p.attempt(ctx, url, body) }, p.retry.options(notify)...)
	if err != nil {
		return status, fmt.Errorf("check-in: %w", err)
	}
	return status, nil
}

// attempt makes one POST; errors wrapped in backoff.Permanent are final.
func (p *checkInPoster) attempt(ctx context.Context, url string, body []byte) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return 0, backoff.Permanent(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", userAgent)
	resp, err := p.client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(io.LimitReader(resp.Body, maxAnswerBody))
	switch c := resp.StatusCode; {
	case c >= 200 && c < 300:
		return c, nil
	case c >= 500:
		return c, fmt.Errorf("HTTP %s from %s%s", resp.Status, url, serverMessage(answer))
	default:
		return c, backoff.Permanent(fmt.Errorf("refused with HTTP %s by %s%s", resp.Status, url, serverMessage(answer)))
	}
}

// serverMessage returns ": <message>" from a netboot error body
// {"error": "..."}, else ": <first 200 bytes of the body on one line>", or
// "" for an empty body.
func serverMessage(body []byte) string {
	var e struct {
		Error string `json:"error"`
	}
	if json.Unmarshal(body, &e) == nil && e.Error != "" {
		return ": " + oneLine(e.Error)
	}
	s := truncate(oneLine(string(body)), 200)
	if s == "" {
		return ""
	}
	return ": " + s
}
