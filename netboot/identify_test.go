package netboot

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeIdentifier records calls and answers per MAC: an error from errs, or
// the next slot (the same one again for a MAC it already answered).
type fakeIdentifier struct {
	mu       sync.Mutex
	calls    []IdentifyCall
	errs     map[string]error
	assigned map[string]IdentifyAssignment
	block    bool // wait for the context to end
}

func newFakeIdentifier() *fakeIdentifier {
	return &fakeIdentifier{errs: map[string]error{}, assigned: map[string]IdentifyAssignment{}}
}

func (f *fakeIdentifier) Identify(ctx context.Context, c IdentifyCall) (IdentifyAssignment, error) {
	f.mu.Lock()
	f.calls = append(f.calls, c)
	block := f.block
	f.mu.Unlock()
	if block {
		<-ctx.Done()
		return IdentifyAssignment{}, fmt.Errorf("update: %w", ctx.Err())
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.errs[c.MAC]; err != nil {
		return IdentifyAssignment{}, err
	}
	if a, ok := f.assigned[c.MAC]; ok {
		return a, nil
	}
	n := len(f.assigned) + 1
	a := IdentifyAssignment{Scope: c.Scope, Slot: n, Name: fmt.Sprintf("%sn%02d", c.Scope, n), IP: fmt.Sprintf("10.1.0.%d", n), MAC: c.MAC}
	f.assigned[c.MAC] = a
	return a, nil
}

func (f *fakeIdentifier) take() []IdentifyCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.calls
	f.calls = nil
	return c
}

func identifyBody(mac, scope string) string {
	b, _ := json.Marshal(IdentifyRequest{MAC: mac, Scope: scope, Token: MintIdentifyToken(testKey, scope)})
	return string(b)
}

func TestIdentifyHandler(t *testing.T) {
	f := newFakeIdentifier()
	f.errs["02:52:46:00:00:09"] = fmt.Errorf("identify/r09: %w", ErrNoIdentify)
	f.errs["02:52:46:00:00:0a"] = fmt.Errorf("identify/r01: %w: all 8 positions taken", ErrPlanExhausted)
	f.errs["02:52:46:00:00:0b"] = fmt.Errorf("%w: already identified in another rack", ErrMACRefused)
	f.errs["02:52:46:00:00:0c"] = fmt.Errorf("temporal unavailable")
	h := &identifyHandler{key: testKey, identifier: f, log: testLogger(t)}
	srv := httptest.NewServer(h)
	defer srv.Close()

	huge := `{"mac":"02:52:46:00:00:01","scope":"r01","token":"` + strings.Repeat("x", MaxIdentifyBody) + `"}`
	wrongScope, _ := json.Marshal(IdentifyRequest{MAC: "02:52:46:00:00:01", Scope: "r01", Token: MintIdentifyToken(testKey, "r02")})
	checkInToken, _ := json.Marshal(IdentifyRequest{MAC: "02:52:46:00:00:01", Scope: "r01", Token: MintToken(testKey, "r01", "usb-identify")})
	otherKey, _ := json.Marshal(IdentifyRequest{MAC: "02:52:46:00:00:01", Scope: "r01", Token: MintIdentifyToken([]byte("another-key-of-16-bytes"), "r01")})
	noToken := `{"mac":"02:52:46:00:00:01","scope":"r01"}`
	tests := []struct {
		name, method, body string
		wantStatus         int
		wantCode           string // "code" of an error answer
		wantError          string // part of "error"
		wantSlot           int    // of a 200 answer
		wantCall           bool   // the Identifier is called
	}{
		{"first", http.MethodPost, identifyBody("02:52:46:00:00:01", "r01"), 200, "", "", 1, true},
		{"second", http.MethodPost, identifyBody("02-52-46-00-00-02", "r01"), 200, "", "", 2, true},
		{"first again: same answer", http.MethodPost, identifyBody("02:52:46:00:00:01", "r01"), 200, "", "", 1, true},
		{"GET", http.MethodGet, "", 405, "", "POST", 0, false},
		{"not JSON", http.MethodPost, "mac=02:52:46:00:00:01", 400, "", "malformed JSON", 0, false},
		{"unknown field", http.MethodPost, `{"mac":"02:52:46:00:00:01","scope":"r01","token":"x","slot":3}`, 400, "", "unknown field", 0, false},
		{"two objects", http.MethodPost, identifyBody("02:52:46:00:00:01", "r01") + "{}", 400, "", "data after the object", 0, false},
		{"missing mac", http.MethodPost, `{"scope":"r01","token":"x"}`, 400, "", "missing field: mac", 0, false},
		{"missing scope", http.MethodPost, `{"mac":"02:52:46:00:00:01","token":"x"}`, 400, "", "missing field: scope", 0, false},
		{"invalid mac", http.MethodPost, identifyBody("02:52:46:00:00", "r01"), 400, "", "invalid MAC", 0, false},
		{"EUI-64 mac", http.MethodPost, identifyBody("02:52:46:ff:fe:00:00:01", "r01"), 400, "", "invalid MAC", 0, false},
		{"invalid scope", http.MethodPost, identifyBody("02:52:46:00:00:01", "../r01"), 400, "", "invalid scope", 0, false},
		{"too large", http.MethodPost, huge, 413, "", "larger than", 0, false},
		{"no token", http.MethodPost, noToken, 401, "", "missing token", 0, false},
		{"token of another scope", http.MethodPost, string(wrongScope), 403, "", "does not verify", 0, false},
		{"check-in token", http.MethodPost, string(checkInToken), 403, "", "does not verify", 0, false},
		{"token of another key", http.MethodPost, string(otherKey), 403, "", "does not verify", 0, false},
		{"no identify running", http.MethodPost, identifyBody("02:52:46:00:00:09", "r09"), 409, IdentifyCodeNoIdentify, "no identification running", 0, true},
		{"plan exhausted", http.MethodPost, identifyBody("02:52:46:00:00:0A", "r01"), 409, IdentifyCodePlanExhausted, "all 8 positions taken", 0, true},
		{"mac refused", http.MethodPost, identifyBody("02:52:46:00:00:0b", "r01"), 422, IdentifyCodeMACRefused, "another rack", 0, true},
		{"identifier fails", http.MethodPost, identifyBody("02:52:46:00:00:0c", "r01"), 502, "", "could not deliver", 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequest(tt.method, srv.URL+"/v1/identify", strings.NewReader(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			resp, err := httpClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			raw, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("status %d, want %d (%s)", resp.StatusCode, tt.wantStatus, raw)
			}
			if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q", ct)
			}
			calls := f.take()
			if tt.wantCall != (len(calls) == 1) || len(calls) > 1 {
				t.Fatalf("Identifier calls %+v, want called: %v", calls, tt.wantCall)
			}
			if tt.wantCall && (calls[0].Scope == "" || calls[0].From != "127.0.0.1" || calls[0].MAC != strings.ToLower(calls[0].MAC)) {
				t.Errorf("call %+v", calls[0])
			}
			if tt.wantStatus == 200 {
				var a IdentifyAssignment
				if err := json.Unmarshal(raw, &a); err != nil {
					t.Fatal(err)
				}
				if a.Slot != tt.wantSlot || a.MAC != calls[0].MAC || a.Name == "" || a.IP == "" {
					t.Errorf("answer %+v, want slot %d", a, tt.wantSlot)
				}
				return
			}
			var e map[string]string
			if err := json.Unmarshal(raw, &e); err != nil {
				t.Fatalf("error body %q: %v", raw, err)
			}
			if !strings.Contains(e["error"], tt.wantError) || e["code"] != tt.wantCode {
				t.Errorf("error body %v, want error containing %q and code %q", e, tt.wantError, tt.wantCode)
			}
		})
	}
}

func TestIdentifyHandlerTimeout(t *testing.T) {
	f := newFakeIdentifier()
	f.block = true
	srv := httptest.NewServer(&identifyHandler{key: testKey, identifier: f, log: testLogger(t), timeout: 50 * time.Millisecond})
	defer srv.Close()
	resp, err := httpClient.Post(srv.URL, "application/json", strings.NewReader(identifyBody("02:52:46:00:00:01", "r01")))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusGatewayTimeout {
		t.Fatalf("status %d, want 504", resp.StatusCode)
	}
}

// TestIdentifyRoute checks that the service serves /v1/identify only when
// an Identifier is configured, with tokens under the check-in key.
func TestIdentifyRoute(t *testing.T) {
	without := startService(t, func(c *Config) { c.DHCPAddr, c.TFTPAddr = "", "" })
	resp, err := httpClient.Post(without.svc.HTTPBase()+"/v1/identify", "application/json", strings.NewReader(identifyBody("02:52:46:00:00:01", "r01")))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("without an Identifier: status %d, want 404", resp.StatusCode)
	}

	f := newFakeIdentifier()
	with := startService(t, func(c *Config) { c.DHCPAddr, c.TFTPAddr, c.Identifier = "", "", f })
	resp, err = httpClient.Post(with.svc.HTTPBase()+"/v1/identify", "application/json", strings.NewReader(identifyBody("02:52:46:00:00:01", "r01")))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var a IdentifyAssignment
	if err := json.NewDecoder(resp.Body).Decode(&a); err != nil || resp.StatusCode != 200 || a.Slot != 1 {
		t.Errorf("with an Identifier: status %d, %+v, %v", resp.StatusCode, a, err)
	}
}

func TestIdentifyTokens(t *testing.T) {
	tok := MintIdentifyToken(testKey, "r01")
	if !VerifyIdentifyToken(testKey, "r01", tok) {
		t.Fatal("token does not verify")
	}
	for name, ok := range map[string]bool{
		"other scope":        VerifyIdentifyToken(testKey, "r02", tok),
		"empty key":          VerifyIdentifyToken(nil, "r01", MintIdentifyToken(nil, "r01")),
		"as a check-in":      VerifyToken(testKey, "identify/r01", "run", tok),
		"check-in as ident.": VerifyIdentifyToken(testKey, "r01", MintToken(testKey, "r01", "usb-identify")),
	} {
		if ok {
			t.Errorf("%s: verifies", name)
		}
	}
}

func TestIdentifyArgs(t *testing.T) {
	a := IdentifyArgs{URL: "http://10.77.0.1:8880/v1/identify", Scope: "r01", Token: MintIdentifyToken(testKey, "r01")}
	words := append([]string{"console=ttyS0"}, a.Encode()...)
	got, err := ParseIdentifyArgs(words)
	if err != nil || got != a {
		t.Fatalf("ParseIdentifyArgs(%q) = %+v, %v", words, got, err)
	}
	for _, bad := range [][]string{
		{"rackflow.scope=r01", "rackflow.token=x"},
		{"rackflow.identify=ftp://x/", "rackflow.scope=r01", "rackflow.token=x"},
		{"rackflow.identify=http://x/v1/identify", "rackflow.scope=R01", "rackflow.token=x"},
		{"rackflow.identify=http://x/v1/identify", "rackflow.scope=r01"},
	} {
		if _, err := ParseIdentifyArgs(bad); err == nil {
			t.Errorf("ParseIdentifyArgs(%q) accepted", bad)
		}
	}
}

func TestIdentifyHandlerPassesConfirm(t *testing.T) {
	f := newFakeIdentifier()
	srv := httptest.NewServer(&identifyHandler{key: testKey, identifier: f, log: testLogger(t)})
	defer srv.Close()
	for _, confirm := range []bool{false, true} {
		b, _ := json.Marshal(IdentifyRequest{MAC: "02:52:46:00:00:01", Scope: "r01", Token: MintIdentifyToken(testKey, "r01"), Confirm: confirm})
		resp, err := http.Post(srv.URL, "application/json", strings.NewReader(string(b)))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		calls := f.take()
		if resp.StatusCode != http.StatusOK || len(calls) != 1 || calls[0].Confirm != confirm {
			t.Errorf("confirm=%v: HTTP %d, calls %+v", confirm, resp.StatusCode, calls)
		}
	}
}
