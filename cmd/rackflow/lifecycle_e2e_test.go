package main

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rackflow/rackflow/dev"
	"github.com/rackflow/rackflow/dev/vrack"
	"github.com/rackflow/rackflow/starter"
	"github.com/rackflow/rackflow/workflows"
)

// TestLifecycleByCLI drives reinstall (with and without a drain webhook)
// and an identification through the CLI on the embedded default.
func TestLifecycleByCLI(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	state := t.TempDir()
	env, err := dev.Start(ctx, dev.Options{
		StateDir: state, Nodes: 2, InMemory: true, Store: "dir",
		FrontendAddr: "127.0.0.1:0", DHCPAddr: "127.0.0.1:0", TFTPAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0",
		BMCPort: freeTCPPort(t), ImageSize: 64 << 10,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer env.Close()
	addr := env.Temporal.FrontendAddr()
	run := func(want int, args ...string) string {
		t.Helper()
		return runCLI(ctx, t, addr, want, args...)
	}

	run(0, "provision", "--image", "demo", "--version", "v1", "--wait", "r01n01")
	if out := run(0, "reinstall", "--image", "demo", "--version", "v2", "--wait", "r01n01"); !strings.Contains(out, "r01n01: reinstalled demo@v2") {
		t.Fatalf("reinstall printed:\n%s", out)
	}
	asked := make(chan string, 1)
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		asked <- string(b)
		w.WriteHeader(http.StatusAccepted)
	}))
	defer hook.Close()
	run(0, "reinstall", "--image", "demo", "--version", "v1", "--drain-url", hook.URL, "r01n01")
	select {
	case body := <-asked:
		if !strings.Contains(body, `"r01n01"`) {
			t.Errorf("drain request %s does not name the node", body)
		}
	case <-ctx.Done():
		t.Fatal("the drain webhook was never called")
	}
	run(0, "drained", "r01n01")
	res, err := env.Client.WaitReinstall(ctx, starter.Run{WorkflowID: workflows.NodeWorkflowID("r01n01")})
	if err != nil || !res.Drained || res.Version != "v1" {
		t.Fatalf("drained reinstall = %+v, %v", res, err)
	}
	// A named user is checked by the worker; this one has no directory.
	if out := run(1, "provision", "--image", "demo", "--version", "v1", "--user", "uid=alice,ou=people,dc=rackflow,dc=test", "--wait", "r01n02"); !strings.Contains(out, "ownership is not configured") {
		t.Errorf("provision as a user without a directory printed:\n%s", out)
	}
	run(2, "reinstall", "r01n01") // no image/version
	run(1, "drained", "r01n02")   // no reinstall waiting

	plan := filepath.Join(t.TempDir(), "plan.yaml")
	if err := os.WriteFile(plan, []byte("- {name: r09n01, ip: 10.9.0.11}\n- {name: r09n02, ip: 10.9.0.12}\n- {slot: 4, name: r09n04, ip: 10.9.0.14}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	run(0, "identify", "start", "--plan", plan, "r09")
	run(1, "identify", "start", "--plan", plan, "r09") // already running
	run(0, "identify", "skip", "--slot", "1", "r09")
	waitStatus := func(want string) {
		t.Helper()
		for deadline := time.Now().Add(time.Minute); ; time.Sleep(100 * time.Millisecond) {
			out := run(0, "identify", "status", "r09")
			if strings.Contains(out, want) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("identify status never said %q:\n%s", want, out)
			}
		}
	}
	waitStatus("2 of 3 positions free, next slot 2 (r09n02, 10.9.0.12), skipped [1]")
	run(0, "identify", "undo", "r09")
	waitStatus("3 of 3 positions free, next slot 1 (r09n01, 10.9.0.11), skipped []")
	run(0, "identify", "finish", "r09")
	if res, err := env.Client.WaitIdentify(ctx, "r09"); err != nil || len(res.Unassigned) != 3 {
		t.Fatalf("identify result = %+v, %v; want 3 unassigned positions", res, err)
	}
	run(2, "identify", "start", "r09") // no plan
	run(2, "identify", "skip", "Bad_Scope")

	// r01n02 is identified by a USB insertion into its virtual port.
	plan1 := filepath.Join(t.TempDir(), "plan1.yaml")
	if err := os.WriteFile(plan1, []byte("- {slot: 2, name: cn02, ip: 127.77.1.2}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	run(0, "identify", "start", "--plan", plan1, "--first-slot", "2", "r01")
	run(0, "identify", "boot", "--scope", "r01", "--wait", "r01n02")
	n2 := env.Rack.Node("r01n02")
	if _, err := n2.WaitFor(ctx, func(vrack.NodeState) bool {
		return slices.ContainsFunc(n2.Events(), func(e vrack.Event) bool { return e.Step == vrack.StepAgent })
	}); err != nil {
		t.Fatal(err)
	}
	if out := run(0, "dev", "usb-insert", "--state-dir", state, "r01n02"); !strings.Contains(out, "inserted (virtual rig)") {
		t.Fatalf("usb-insert printed:\n%s", out)
	}
	if st, err := n2.WaitFor(ctx, func(s vrack.NodeState) bool { return s.Identity != nil && s.Identity.Confirmed }); err != nil || st.Identity.Name != "cn02" {
		t.Fatalf("r01n02 identity = %+v, %v", st.Identity, err)
	}
	if out := run(0, "identify", "status", "r01"); !strings.Contains(out, "from 127.77.1.2") {
		t.Fatalf("identify status does not show the confirmation:\n%s", out)
	}
	run(0, "identify", "finish", "r01")
	run(2, "identify", "boot", "r01n02")                   // no scope
	run(2, "identify", "boot", "--scope", "R 1", "r01n02") // bad scope
	run(2, "dev", "usb-insert", "--state-dir", state)      // no node
	run(2, "dev", "usb-insert", "--state-dir", state, "../r01n02")

	// A rollout that reinstalls, then both nodes released.
	run(0, "rollout", "start", "--reinstall", "--image", "demo", "--version", "v2", "--id", "re1", "--watch", "r01n01")
	if root, err := env.Images.Root(ctx, "r01n01"); err != nil || root.Version != "v2" {
		t.Fatalf("root of r01n01 after the reinstall rollout: %+v, %v", root, err)
	}
	run(2, "rollout", "start", "--reinstall", "--replace", "--image", "demo", "--version", "v2", "r01n01")
	if out := run(0, "release", "--wait", "r01n01", "r01n02"); !strings.Contains(out, "r01n01: released (power-off)") {
		t.Fatalf("release printed:\n%s", out)
	}
	if _, err := env.Images.Root(ctx, "r01n01"); err == nil {
		t.Error("r01n01 still has a root after its release")
	}
}
