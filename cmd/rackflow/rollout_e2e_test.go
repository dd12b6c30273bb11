package main

import (
	"bytes"
	"context"
	"errors"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/rackflow/rackflow/dev"
	"github.com/rackflow/rackflow/dev/vrack"
	"github.com/rackflow/rackflow/workflows"
)

// TestRolloutOperatedByCLIAndAPI starts a rollout on the embedded default
// and steers it the two ways operators and other systems do: the CLI
// (pause, add-nodes, cancel --undo, show) and plain Temporal signals
// (resume). r01n01 never checks in, so the rollout (window 1) is still on
// it while it is steered.
// freeTCPPort returns a TCP port on 127.0.0.1 that was free a moment ago.
func freeTCPPort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// runCLI runs the rackflow CLI against the Temporal frontend at addr and
// fails t unless it exits with want; it returns what the CLI printed.
func runCLI(ctx context.Context, t *testing.T, addr string, want int, args ...string) string {
	t.Helper()
	var out bytes.Buffer
	a := app()
	a.Writer, a.ErrWriter = &out, &out
	err := a.RunContext(ctx, append([]string{"rackflow", "--temporal-address", addr}, args...))
	code := 0
	var exit cli.ExitCoder
	switch {
	case errors.As(err, &exit):
		code = exit.ExitCode()
	case err != nil:
		code = 1
	}
	if code != want {
		t.Fatalf("rackflow %s: exit %d (%v), want %d\n%s", strings.Join(args, " "), code, err, want, out.String())
	}
	return out.String()
}

func TestRolloutOperatedByCLIAndAPI(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	env, err := dev.Start(ctx, dev.Options{
		StateDir: t.TempDir(), Racks: 2, Nodes: 3, InMemory: true, Store: "dir",
		FrontendAddr: "127.0.0.1:0", DHCPAddr: "127.0.0.1:0", TFTPAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0",
		BMCPort: freeTCPPort(t), ImageSize: 64 << 10,
		Faults: map[string]vrack.Fault{"r01n01": vrack.FaultNoCheckIn},
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
	state := func() workflows.RolloutProgress {
		t.Helper()
		p, err := env.Client.RolloutProgress(ctx, "e2e")
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	waitFor := func(what string, ok func(workflows.RolloutProgress) bool) {
		t.Helper()
		for deadline := time.Now().Add(time.Minute); !ok(state()); time.Sleep(100 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s: %+v", what, state())
			}
		}
	}

	run(0, "rollout", "start", "--rack", "r01", "--image", "demo", "--version", "v1", "--window", "1", "--check-in-timeout", "10m", "--id", "e2e")
	waitFor("r01n01 running", func(p workflows.RolloutProgress) bool { return p.Running == 1 })
	run(1, "rollout", "start", "--rack", "r01", "--image", "demo", "--version", "v1", "--id", "e2e") // the ID is taken

	run(0, "rollout", "pause", "e2e")
	waitFor("paused", func(p workflows.RolloutProgress) bool { return p.State == workflows.RolloutPaused })

	// Another system resumes it through the Temporal API.
	if err := env.Client.Temporal().SignalWorkflow(ctx, workflows.RolloutWorkflowID("e2e"), "", workflows.SignalResume, nil); err != nil {
		t.Fatal(err)
	}
	waitFor("running", func(p workflows.RolloutProgress) bool { return p.State == workflows.RolloutRunning })

	run(0, "rollout", "add-nodes", "e2e", "r02n01")
	waitFor("r02n01 provisioned", func(p workflows.RolloutProgress) bool { return p.Total == 4 && p.Provisioned == 1 })

	run(0, "rollout", "cancel", "e2e", "--undo")
	res, err := env.Client.WaitRollout(ctx, "e2e")
	if err != nil {
		t.Fatal(err)
	}
	if res.State != workflows.RolloutCancelled || !slices.Equal(res.Provisioned, []string{"r02n01"}) ||
		len(res.Failures) != 1 || res.Failures[0].Node != "r01n01" || res.Failures[0].Step != "cancelled" ||
		!slices.Equal(res.Skipped, []string{"r01n02", "r01n03"}) {
		t.Fatalf("result = %+v", res)
	}
	if _, err := env.Images.Root(ctx, "r01n01"); err == nil {
		t.Error("the cancelled node's root was not undone")
	}
	out := run(1, "rollout", "show", "e2e")
	if !strings.Contains(out, "cancelled") || !strings.Contains(out, "r01n01") {
		t.Errorf("show:\n%s", out)
	}
	if out := run(0, "rollout", "list"); !strings.Contains(out, "e2e") {
		t.Errorf("list:\n%s", out)
	}
	run(1, "rollout", "pause", "e2e")  // ended
	run(1, "rollout", "pause", "nope") // unknown
}
