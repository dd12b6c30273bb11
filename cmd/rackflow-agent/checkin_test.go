package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/rackflow/rackflow/netboot"
)

// checkInServer records check-in bodies and answers with statuses in
// order (the last one repeats), with netboot's {"error": ...} bodies.
type checkInServer struct {
	statuses []int

	mu     sync.Mutex
	bodies []netboot.CheckIn
	errs   []string
}

func (s *checkInServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var c netboot.CheckIn
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	err := dec.Decode(&c)
	s.mu.Lock()
	n := len(s.bodies)
	s.bodies = append(s.bodies, c)
	if err != nil {
		s.errs = append(s.errs, "decode: "+err.Error())
	}
	if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/json" || r.URL.Path != "/v1/checkin" {
		s.errs = append(s.errs, "bad request: "+r.Method+" "+r.URL.Path+" "+r.Header.Get("Content-Type"))
	}
	s.mu.Unlock()
	status := s.statuses[min(n, len(s.statuses)-1)]
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	if status == http.StatusAccepted {
		io.WriteString(w, `{"status":"accepted"}`+"\n")
		return
	}
	msg := map[int]string{
		http.StatusForbidden:  "token does not verify for this node and run",
		http.StatusConflict:   "no operation in progress for this node",
		http.StatusBadGateway: "could not deliver the check-in",
	}[status]
	json.NewEncoder(w).Encode(map[string]string{"error": msg})
}

func (s *checkInServer) received() ([]netboot.CheckIn, []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]netboot.CheckIn(nil), s.bodies...), append([]string(nil), s.errs...)
}

func TestCheckInPost(t *testing.T) {
	ok := netboot.CheckIn{Node: "r01n01", Run: "run-1", Token: "tok", Status: netboot.CheckInOK, Digest: digestOf([]byte("x"))}
	failed := netboot.CheckIn{Node: "r01n01", Run: "run-1", Token: "tok", Status: netboot.CheckInError, Message: "image: HTTP 404 Not Found from http://x/i"}
	tests := []struct {
		name       string
		statuses   []int
		send       netboot.CheckIn
		wantStatus int
		wantErr    string // substring; "" = success
		posts      int
		retries    int
	}{
		{name: "accepted", statuses: []int{202}, send: ok, wantStatus: 202, posts: 1},
		{name: "error status accepted", statuses: []int{202}, send: failed, wantStatus: 202, posts: 1},
		{name: "200 is fine too", statuses: []int{200}, send: ok, wantStatus: 200, posts: 1},
		{
			name: "403 is final", statuses: []int{403, 202}, send: ok, wantStatus: 403, posts: 1,
			wantErr: "check-in: refused with HTTP 403 Forbidden by http://",
		},
		{
			name: "409 is final", statuses: []int{409}, send: ok, wantStatus: 409, posts: 1,
			wantErr: "/v1/checkin: no operation in progress for this node",
		},
		{name: "502 retried then accepted", statuses: []int{502, 502, 202}, send: ok, wantStatus: 202, posts: 3, retries: 2},
		{
			name: "502 until the tries run out", statuses: []int{502}, send: ok, wantStatus: 502, posts: 4, retries: 3,
			wantErr: "check-in: HTTP 502 Bad Gateway from http://",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &checkInServer{statuses: tt.statuses}
			srv := httptest.NewServer(s)
			defer srv.Close()
			con, buf := testConsole()
			p := &checkInPoster{client: srv.Client(), retry: fastRetry(4), con: con}
			status, err := p.post(context.Background(), srv.URL+"/v1/checkin", tt.send)
			t.Logf("err: %v\n%s", err, buf.String())
			if tt.wantErr == "" && err != nil {
				t.Fatalf("err = %v", err)
			}
			if tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
			}
			if status != tt.wantStatus {
				t.Errorf("status = %d, want %d", status, tt.wantStatus)
			}
			bodies, problems := s.received()
			if len(problems) > 0 {
				t.Errorf("server saw problems: %q", problems)
			}
			if len(bodies) != tt.posts {
				t.Fatalf("posts = %d, want %d", len(bodies), tt.posts)
			}
			for i, b := range bodies {
				if b != tt.send {
					t.Errorf("post %d body = %+v, want %+v", i, b, tt.send)
				}
			}
			if got := strings.Count(buf.String(), "retry check-in: "); got != tt.retries {
				t.Errorf("retry lines = %d, want %d", got, tt.retries)
			}
		})
	}
}

func TestCheckInNetworkErrorRetried(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL + "/v1/checkin"
	srv.Close() // nothing listens there any more
	con, buf := testConsole()
	p := &checkInPoster{client: &http.Client{Transport: newTransport()}, retry: fastRetry(3), con: con}
	_, err := p.post(context.Background(), url, netboot.CheckIn{Node: "n", Run: "r", Token: "t", Status: "ok"})
	if err == nil || !strings.HasPrefix(err.Error(), "check-in: ") {
		t.Fatalf("err = %v", err)
	}
	if got := strings.Count(buf.String(), "retry check-in: "); got != 2 {
		t.Errorf("retry lines = %d, want 2:\n%s", got, buf.String())
	}
}

func TestServerMessage(t *testing.T) {
	for body, want := range map[string]string{
		`{"error":"token does not verify"}`: ": token does not verify",
		"plain text\nsecond line":           ": plain text second line",
		"":                                  "",
		strings.Repeat("x", 300):            ": " + strings.Repeat("x", 200) + "…",
	} {
		if got := serverMessage([]byte(body)); got != want {
			t.Errorf("serverMessage(%.20q) = %q, want %q", body, got, want)
		}
	}
}
