package activities

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	"go.temporal.io/sdk/temporal"

	"github.com/rackflow/rackflow/workflows"
)

// drainClient calls drain webhooks; its timeout bounds one attempt, the
// activity's RetryPolicy the whole request.
var drainClient = &http.Client{Timeout: 10 * time.Second}

// drainBody is the JSON a drain webhook receives.
type drainBody struct {
	Node       string `json:"node"`
	WorkflowID string `json:"workflow_id"`
	RunID      string `json:"run_id"`
	Signal     string `json:"signal"`
}

// RequestDrain POSTs the drain request to the inventory's webhook. A 2xx
// answer means the request was taken (the drained signal follows later);
// a 4xx answer (but 408 and 429) or an unusable URL is a non-retryable
// DrainRejected; anything else (5xx, 408, 429, network errors) is retried.
// Idempotent as far as rackflow goes: the request names the workflow run, so
// a webhook that receives it twice can tell.
func (a *Activities) RequestDrain(ctx context.Context, in workflows.DrainRequest) error {
	u, err := url.Parse(in.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return temporal.NewNonRetryableApplicationError(fmt.Sprintf("drain webhook URL %q: want http(s)://host/…", in.URL), workflows.ErrDrainRejected, err)
	}
	body, err := json.Marshal(drainBody{Node: in.Node, WorkflowID: in.WorkflowID, RunID: in.RunID, Signal: in.Signal})
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), bytes.NewReader(body))
	if err != nil {
		return temporal.NewNonRetryableApplicationError(err.Error(), workflows.ErrDrainRejected, err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := drainClient.Do(req)
	if err != nil {
		return fmt.Errorf("drain webhook of %s: %w", in.Node, err)
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	switch code := resp.StatusCode; {
	case code >= 200 && code < 300:
		return nil
	case code >= 400 && code < 500 && code != http.StatusRequestTimeout && code != http.StatusTooManyRequests:
		return temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("drain webhook %s refused %s: %s %s", u.Redacted(), in.Node, resp.Status, bytes.TrimSpace(msg)), workflows.ErrDrainRejected, nil)
	default:
		return fmt.Errorf("drain webhook %s for %s: %s %s", u.Redacted(), in.Node, resp.Status, bytes.TrimSpace(msg))
	}
}
