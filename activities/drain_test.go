package activities

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/rackflow/rackflow/workflows"
)

func TestRequestDrain(t *testing.T) {
	tests := []struct {
		name      string
		status    int
		retryable bool // the error is one retrying can fix
		wantErr   bool
	}{
		{"2xx takes the request", http.StatusAccepted, false, false},
		{"4xx is not retried", http.StatusNotFound, false, true},
		{"429 is retried", http.StatusTooManyRequests, true, true},
		{"5xx is retried", http.StatusServiceUnavailable, true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got map[string]string
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/json" {
					t.Errorf("%s with Content-Type %q", r.Method, r.Header.Get("Content-Type"))
				}
				if err := json.NewDecoder(r.Body).Decode(&got); err != nil {
					t.Error(err)
				}
				http.Error(w, "answer", tt.status)
			}))
			defer srv.Close()
			var s testsuite.WorkflowTestSuite
			env := s.NewTestActivityEnvironment()
			acts := &Activities{}
			env.RegisterActivity(acts)
			_, err := env.ExecuteActivity(acts.RequestDrain, workflows.DrainRequest{
				URL: srv.URL + "/drain", Node: "r01n01", WorkflowID: "node/r01n01", RunID: "run-1", Signal: workflows.SignalDrained,
			})
			want := map[string]string{"node": "r01n01", "workflow_id": "node/r01n01", "run_id": "run-1", "signal": "drained"}
			if len(got) != len(want) {
				t.Errorf("webhook got %v, want %v", got, want)
			}
			for k, v := range want {
				if got[k] != v {
					t.Errorf("webhook got %v, want %v", got, want)
				}
			}
			switch {
			case !tt.wantErr:
				if err != nil {
					t.Fatal(err)
				}
			case tt.retryable:
				var app *temporal.ApplicationError
				if err == nil || (errors.As(err, &app) && app.NonRetryable()) || workflows.IsApplicationError(err, workflows.ErrDrainRejected) {
					t.Fatalf("error = %v, want a retryable one", err)
				}
			default:
				wantType(t, err, workflows.ErrDrainRejected)
			}
		})
	}
}

func TestRequestDrainBadURL(t *testing.T) {
	var s testsuite.WorkflowTestSuite
	env := s.NewTestActivityEnvironment()
	acts := &Activities{}
	env.RegisterActivity(acts)
	for _, u := range []string{"", "ftp://inventory/drain", "http://", "://nope"} {
		_, err := env.ExecuteActivity(acts.RequestDrain, workflows.DrainRequest{URL: u, Node: "r01n01"})
		wantType(t, err, workflows.ErrDrainRejected)
	}
}
