package redfishemu_test

import (
	"crypto/tls"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/rackflow/rackflow/dev/vrack/redfishemu"
)

type emu struct {
	srv     *redfishemu.Server
	machine *redfishemu.Machine
	hc      *http.Client
}

func start(t *testing.T, maxSessions int) *emu {
	t.Helper()
	m := redfishemu.NewMachine("", nil)
	srv, err := redfishemu.Start(redfishemu.Config{Addr: "127.0.0.1:0", Username: "admin", Password: "pw-1", Machine: m, MaxSessions: maxSessions})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	t.Cleanup(hc.CloseIdleConnections)
	return &emu{srv: srv, machine: m, hc: hc}
}

// do sends a request; auth is "" (none), "basic:<user>:<pass>" or a token.
func (e *emu) do(t *testing.T, method, path, auth, body string, hdr ...string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(method, e.srv.URL()+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if user, ok := strings.CutPrefix(auth, "basic:"); ok {
		u, p, _ := strings.Cut(user, ":")
		req.SetBasicAuth(u, p)
	} else if auth != "" {
		req.Header.Set("X-Auth-Token", auth)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := e.hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

func (e *emu) login(t *testing.T) (token, location string) {
	t.Helper()
	resp := e.do(t, "POST", "/redfish/v1/SessionService/Sessions", "", `{"UserName":"admin","Password":"pw-1"}`)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("login: %d", resp.StatusCode)
	}
	return resp.Header.Get("X-Auth-Token"), resp.Header.Get("Location")
}

func TestAuth(t *testing.T) {
	e := start(t, 0)
	token, loc := e.login(t)
	if token == "" || !strings.HasPrefix(loc, "/redfish/v1/SessionService/Sessions/") {
		t.Fatalf("login headers: token %q, location %q", token, loc)
	}
	tests := []struct {
		name         string
		method, path string
		auth, body   string
		want         int
	}{
		{"service root is open", "GET", "/redfish/v1/", "", "", 200},
		{"version document is open", "GET", "/redfish", "", "", 200},
		{"systems need auth", "GET", "/redfish/v1/Systems", "", "", 401},
		{"bad token", "GET", "/redfish/v1/Systems", "0123", "", 401},
		{"token", "GET", "/redfish/v1/Systems", token, "", 200},
		{"basic", "GET", "/redfish/v1/Systems/1", "basic:admin:pw-1", "", 200},
		{"basic wrong password", "GET", "/redfish/v1/Systems/1", "basic:admin:nope", "", 401},
		{"login wrong password", "POST", "/redfish/v1/SessionService/Sessions", "", `{"UserName":"admin","Password":"nope"}`, 401},
		{"login malformed", "POST", "/redfish/v1/SessionService/Sessions", "", `{`, 400},
		{"unknown resource", "GET", "/redfish/v1/Fabrics", token, "", 404},
		{"trailing slash", "GET", "/redfish/v1/Managers/1/", token, "", 200},
		{"session resource", "GET", loc, token, "", 200},
		{"logout", "DELETE", loc, token, "", 204},
		{"token after logout", "GET", "/redfish/v1/Systems", token, "", 401},
	}
	for _, tt := range tests {
		resp := e.do(t, tt.method, tt.path, tt.auth, tt.body)
		if resp.StatusCode != tt.want {
			b, _ := io.ReadAll(resp.Body)
			t.Errorf("%s: %s %s = %d %s, want %d", tt.name, tt.method, tt.path, resp.StatusCode, b, tt.want)
		}
		if resp.StatusCode == 401 && tt.body == "" && resp.Header.Get("WWW-Authenticate") == "" {
			t.Errorf("%s: 401 without WWW-Authenticate", tt.name)
		}
		if resp.StatusCode >= 400 {
			var body struct{ Error struct{ Code string } }
			if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || body.Error.Code == "" {
				t.Errorf("%s: error body without a Redfish error code (%v)", tt.name, err)
			}
		}
	}
}

func TestSessionEviction(t *testing.T) {
	e := start(t, 2)
	first, _ := e.login(t)
	e.login(t)
	e.login(t)
	if resp := e.do(t, "GET", "/redfish/v1/Systems", first, ""); resp.StatusCode != 401 {
		t.Fatalf("oldest session still valid beyond MaxSessions: %d", resp.StatusCode)
	}
}

func TestPatchBoot(t *testing.T) {
	e := start(t, 0)
	token, _ := e.login(t)
	etag := func() string { return e.do(t, "GET", "/redfish/v1/Systems/1", token, "").Header.Get("ETag") }
	tests := []struct {
		name    string
		body    string
		ifMatch string // "current" = the current ETag
		want    int
		boot    redfishemu.Boot // expected afterwards
	}{
		{"pxe once", `{"Boot":{"BootSourceOverrideEnabled":"Once","BootSourceOverrideTarget":"Pxe","BootSourceOverrideMode":"UEFI"}}`, "", 204,
			redfishemu.Boot{Enabled: "Once", Target: "Pxe", Mode: "UEFI"}},
		{"partial with current etag", `{"Boot":{"BootSourceOverrideTarget":"Hdd"}}`, "current", 204,
			redfishemu.Boot{Enabled: "Once", Target: "Hdd", Mode: "UEFI"}},
		{"stale etag", `{"Boot":{"BootSourceOverrideTarget":"Pxe"}}`, `W/"0"`, 412,
			redfishemu.Boot{Enabled: "Once", Target: "Hdd", Mode: "UEFI"}},
		{"bad target", `{"Boot":{"BootSourceOverrideTarget":"Tape"}}`, "", 400,
			redfishemu.Boot{Enabled: "Once", Target: "Hdd", Mode: "UEFI"}},
		{"bad enabled", `{"Boot":{"BootSourceOverrideEnabled":"Always"}}`, "", 400,
			redfishemu.Boot{Enabled: "Once", Target: "Hdd", Mode: "UEFI"}},
		{"read-only property", `{"PowerState":"On"}`, "", 400,
			redfishemu.Boot{Enabled: "Once", Target: "Hdd", Mode: "UEFI"}},
		{"malformed", `{"Boot":`, "", 400,
			redfishemu.Boot{Enabled: "Once", Target: "Hdd", Mode: "UEFI"}},
	}
	for _, tt := range tests {
		var hdr []string
		switch tt.ifMatch {
		case "":
		case "current":
			hdr = []string{"If-Match", etag()}
		default:
			hdr = []string{"If-Match", tt.ifMatch}
		}
		resp := e.do(t, "PATCH", "/redfish/v1/Systems/1", token, tt.body, hdr...)
		if resp.StatusCode != tt.want {
			t.Errorf("%s: %d, want %d", tt.name, resp.StatusCode, tt.want)
		}
		if _, boot, _ := e.machine.State(); boot != tt.boot {
			t.Errorf("%s: boot %+v, want %+v", tt.name, boot, tt.boot)
		}
	}
}

func TestResetAction(t *testing.T) {
	e := start(t, 0)
	token, _ := e.login(t)
	for _, tt := range []struct {
		body string
		want int
	}{
		{`{"ResetType":"On"}`, 204},
		{`{"ResetType":"Explode"}`, 400},
		{`{}`, 400},
		{`nope`, 400},
	} {
		if resp := e.do(t, "POST", "/redfish/v1/Systems/1/Actions/ComputerSystem.Reset", token, tt.body); resp.StatusCode != tt.want {
			t.Errorf("reset %s: %d, want %d", tt.body, resp.StatusCode, tt.want)
		}
	}
	if on, _, _ := e.machine.State(); !on {
		t.Error("On did not power on")
	}
	var sys struct {
		PowerState string
		Actions    map[string]struct {
			Target  string   `json:"target"`
			Allowed []string `json:"ResetType@Redfish.AllowableValues"`
		}
	}
	if err := json.NewDecoder(e.do(t, "GET", "/redfish/v1/Systems/1", token, "").Body).Decode(&sys); err != nil {
		t.Fatal(err)
	}
	if a := sys.Actions["#ComputerSystem.Reset"]; sys.PowerState != "On" || a.Target == "" || len(a.Allowed) == 0 {
		t.Errorf("system %+v", sys)
	}
}

func TestMachineReset(t *testing.T) {
	var changes []redfishemu.Change
	m := redfishemu.NewMachine("", func(c redfishemu.Change) { changes = append(changes, c) })
	tests := []struct {
		reset   string
		boot    *redfishemu.Boot // set before the reset
		wantOn  bool
		restart bool   // a boot starts
		target  string // its target
	}{
		{"ForceOff", nil, false, false, ""},
		{"On", nil, true, true, "Hdd"},
		{"On", nil, true, false, ""},
		{"ForceRestart", &redfishemu.Boot{Enabled: "Once", Target: "Pxe"}, true, true, "Pxe"},
		{"GracefulRestart", nil, true, true, "Hdd"}, // the Once override was used
		{"Nmi", nil, true, false, ""},
		{"GracefulShutdown", nil, false, false, ""},
		{"PowerCycle", &redfishemu.Boot{Enabled: "Continuous", Target: "Pxe"}, true, true, "Pxe"},
		{"PushPowerButton", nil, false, false, ""},
		{"PushPowerButton", nil, true, true, "Pxe"},
		{"ForceOn", &redfishemu.Boot{Enabled: "Continuous", Target: "None"}, true, false, ""},
	}
	for i, tt := range tests {
		if tt.boot != nil {
			if err := m.SetBoot(*tt.boot); err != nil {
				t.Fatal(err)
			}
		}
		before := len(changes)
		if err := m.Reset(tt.reset); err != nil {
			t.Fatalf("%d %s: %v", i, tt.reset, err)
		}
		on, _, _ := m.State()
		if on != tt.wantOn {
			t.Errorf("%d %s: on=%v, want %v", i, tt.reset, on, tt.wantOn)
		}
		var restarted []redfishemu.Change
		for _, c := range changes[before:] {
			if c.Restart {
				restarted = append(restarted, c)
			}
		}
		if tt.restart != (len(restarted) == 1) || (tt.restart && restarted[0].Target != tt.target) {
			t.Errorf("%d %s: transitions %+v, want restart=%v target %q", i, tt.reset, changes[before:], tt.restart, tt.target)
		}
	}
	if err := m.Reset("Explode"); !errors.Is(err, redfishemu.ErrInvalidValue) {
		t.Errorf("unknown reset type: %v", err)
	}
}

func TestSelfSignedCertificate(t *testing.T) {
	e := start(t, 0)
	conn, err := tls.Dial("tcp", e.srv.Addr(), &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	cert := conn.ConnectionState().PeerCertificates[0]
	if len(cert.IPAddresses) != 1 || !cert.IPAddresses[0].Equal(net.IPv4(127, 0, 0, 1)) {
		t.Errorf("certificate IP SANs %v", cert.IPAddresses)
	}
}
