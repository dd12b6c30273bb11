package dev

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/converter"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/rackflow/rackflow/activities/imagestore"
	"github.com/rackflow/rackflow/dev/vrack"
	"github.com/rackflow/rackflow/netboot"
	"github.com/rackflow/rackflow/netboot/swarm"
	"github.com/rackflow/rackflow/workflows"
)

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startEnv starts the embedded default for a test: in-memory Temporal, dir
// image store, free loopback ports, a rack of nodes virtual nodes.
func startEnv(ctx context.Context, t *testing.T, nodes int, checkIn time.Duration, faults map[string]vrack.Fault) *Env {
	t.Helper()
	env, err := Start(ctx, Options{
		StateDir: t.TempDir(), Nodes: nodes, InMemory: true, Store: "dir",
		FrontendAddr: "127.0.0.1:0", DHCPAddr: "127.0.0.1:0", TFTPAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0",
		BMCPort: freePort(t), ImageSize: 1 << 20, CheckInTimeout: checkIn, Faults: faults,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(env.Close)
	return env
}

// TestProvisionVirtualRack provisions 4 virtual nodes through the real
// embedded Temporal server, worker, netboot service and Redfish emulators,
// then checks through the Temporal API that 4 Provision workflows completed
// with the right search attributes, and that the rollout's end withdrew
// their runs' .torrents, which stopped the nodes' seeding.
func TestProvisionVirtualRack(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	env := startEnv(ctx, t, 4, 2*time.Minute, nil)
	version, err := LatestVersion(ctx, env.Images, DemoImage)
	if err != nil || version != "v2" {
		t.Fatalf("latest version = %q, %v", version, err)
	}
	var out bytes.Buffer
	sum, err := env.ProvisionAll(ctx, DemoImage, version, &out)
	if err != nil {
		t.Fatal(err)
	}
	t.Log("\n" + out.String())
	if sum.Provisioned != 4 || len(sum.Failed) != 0 {
		t.Fatalf("%s; failed: %v", sum, sum.Failed)
	}
	if !strings.HasPrefix(sum.String(), "provisioned 4/4 nodes in ") {
		t.Errorf("summary line = %q", sum)
	}

	// Every node's root holds the exact bytes of the version.
	var digest string
	for _, n := range env.Inventory.Nodes {
		root, err := env.Images.Root(ctx, n.Name)
		if err != nil || root.Version != "v2" {
			t.Errorf("%s root = %+v, %v", n.Name, root, err)
		}
		digest = root.Digest
	}
	// The swarm is the default transport: every node downloaded through
	// it, and the four exports share one torrent, which the worker still
	// seeds (until the nodes are unexported).
	seeded, ok := env.Seeder.Stats(digest)
	if !ok || seeded.Sources != 4 {
		t.Fatalf("seeder stats of %s: %+v, %v; want 4 exports seeded", digest, seeded, ok)
	}
	if got := httpRequests(t, env.Netboot.Metrics(), "GET /torrents/{node}/{file}", "200"); got < 4 {
		t.Errorf("%v .torrent downloads, want at least one per node", got)
	}
	for _, n := range env.Rack.Nodes() {
		var image *vrack.Event
		for _, e := range n.Events() {
			if e.Step == vrack.StepImage {
				image = &e
			}
		}
		if image == nil || image.Err != nil {
			t.Errorf("%s: image step %+v", n.Name(), image)
		}
	}
	t.Logf("seeder sent %d bytes for 4 nodes of a %d-byte image", seeded.Sent, 1<<20)

	// Visibility is updated asynchronously: poll until it has caught up.
	query := fmt.Sprintf("WorkflowType = 'Provision' AND %s = 'r01' AND ExecutionStatus = 'Completed'", workflows.AttrRack.GetName())
	var resp *workflowservice.ListWorkflowExecutionsResponse
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		resp, err = env.Client.Temporal().ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{Query: query})
		if err != nil {
			t.Fatal(err)
		}
		if len(resp.GetExecutions()) >= 4 || time.Now().After(deadline) {
			break
		}
	}
	if got := len(resp.GetExecutions()); got != 4 {
		t.Fatalf("%d completed Provision workflows in rack r01, want 4", got)
	}
	// When the rack's share of the rollout ended, the seeding ended
	// (EndSeeding): each Provision run's .torrent is withdrawn, and every
	// virtual node's agent, which polls it, stopped seeding for that reason.
	for _, e := range resp.GetExecutions() {
		var res workflows.ProvisionResult
		id, runID := e.GetExecution().GetWorkflowId(), e.GetExecution().GetRunId()
		if err := env.Client.Temporal().GetWorkflow(ctx, id, runID).Get(ctx, &res); err != nil {
			t.Fatal(err)
		}
		if want := (workflows.Torrent{Node: res.Node, Run: runID}); res.Torrent != want {
			t.Errorf("%s: torrent %+v, want %+v", id, res.Torrent, want)
		}
		hr, err := http.Head(env.Netboot.HTTPBase() + netboot.TorrentPath(res.Node, runID))
		if err != nil {
			t.Fatal(err)
		}
		hr.Body.Close()
		if hr.StatusCode != http.StatusNotFound {
			t.Errorf("%s: .torrent after the rollout: HTTP %d, want 404 (withdrawn)", res.Node, hr.StatusCode)
		}
	}
	for _, n := range env.Rack.Nodes() {
		st, err := n.WaitFor(ctx, func(s vrack.NodeState) bool { return s.SeedStop != "" })
		if err != nil || st.SeedStop != swarm.StopWithdrawn {
			t.Errorf("%s: seeding stopped %q, %v; want %q", n.Name(), st.SeedStop, err, swarm.StopWithdrawn)
		}
	}

	dc := converter.GetDefaultDataConverter()
	for _, e := range resp.GetExecutions() {
		if e.GetStatus() != enums.WORKFLOW_EXECUTION_STATUS_COMPLETED {
			t.Errorf("%s: %s", e.GetExecution().GetWorkflowId(), e.GetStatus())
		}
		attrs := map[string]string{}
		for name, p := range e.GetSearchAttributes().GetIndexedFields() {
			var v string
			if err := dc.FromPayload(p, &v); err == nil {
				attrs[name] = v
			}
		}
		node := strings.TrimPrefix(e.GetExecution().GetWorkflowId(), "node/")
		want := map[string]string{"RackflowNode": node, "RackflowRack": "r01", "RackflowImage": DemoImage, "RackflowPhase": "provisioned"}
		for k, v := range want {
			if attrs[k] != v {
				t.Errorf("%s: %s = %q, want %q", node, k, attrs[k], v)
			}
		}
	}

	// A check-in for a run that has ended, or with a wrong token, is refused
	// over the real HTTP service and changes nothing.
	key, err := os.ReadFile(filepath.Join(env.opts.StateDir, "checkin.key"))
	if err != nil {
		t.Fatal(err)
	}
	run := resp.GetExecutions()[0].GetExecution()
	node := strings.TrimPrefix(run.GetWorkflowId(), "node/")
	for _, tc := range []struct {
		token string
		want  int
	}{
		{netboot.MintToken(key, node, run.GetRunId()), http.StatusConflict},
		{netboot.MintToken(key, "r01n99", run.GetRunId()), http.StatusForbidden},
		{"", http.StatusUnauthorized},
	} {
		body := fmt.Sprintf(`{"node":%q,"run":%q,"token":%q,"status":"ok","digest":"sha256:%064x"}`, node, run.GetRunId(), tc.token, 0)
		r, err := http.Post(env.Netboot.HTTPBase()+"/v1/checkin", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		r.Body.Close()
		if r.StatusCode != tc.want {
			t.Errorf("check-in with token %q: HTTP %d, want %d", tc.token, r.StatusCode, tc.want)
		}
	}

	st, err := env.Client.Status(ctx, nil)
	if err != nil || len(st) != 4 || st[0].Phase != "provisioned" || st[0].Version != "v2" {
		t.Errorf("status = %+v, %v", st, err)
	}
	saveHistory(t, env, workflows.RackRolloutWorkflowID(sum.RolloutID, "r01"), "rackrollout-end-seeding.json")
}

var recordHistory = flag.String("record-history", "", "write the histories of the integration tests' workflows into this directory (replay test data)")

// saveHistory writes a workflow's history as JSON for the replay tests.
func saveHistory(t *testing.T, env *Env, workflowID, name string) {
	t.Helper()
	if *recordHistory == "" {
		return
	}
	iter := env.Client.Temporal().GetWorkflowHistory(context.Background(), workflowID, "", false, enums.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	var h historypb.History
	for iter.HasNext() {
		e, err := iter.Next()
		if err != nil {
			t.Fatal(err)
		}
		h.Events = append(h.Events, e)
	}
	data, err := protojson.MarshalOptions{Indent: "  "}.Marshal(&h)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(*recordHistory, name), data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestNodeThatNeverChecksIn: a virtual node that boots but never checks in
// is booted twice (power cycle, then off/on), then its Provision fails with
// CheckInTimeout, its root is destroyed and its boot profile reset, while
// the healthy node is provisioned.
func TestNodeThatNeverChecksIn(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	env := startEnv(ctx, t, 2, 3*time.Second, map[string]vrack.Fault{"r01n02": vrack.FaultNoCheckIn})
	sum, err := env.ProvisionAll(ctx, DemoImage, "v1", io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Provisioned != 1 || len(sum.Failed) != 1 || sum.Failed[0].Node != "r01n02" {
		t.Fatalf("%s; failed: %v", sum, sum.Failed)
	}
	if sum.Failed[0].Step != workflows.ErrCheckInTimeout {
		t.Errorf("r01n02 failed in %s (%s), want %s", sum.Failed[0].Step, sum.Failed[0].Error, workflows.ErrCheckInTimeout)
	}
	if st := env.Rack.Node("r01n02").State(); st.NetBoots != 2 {
		t.Errorf("r01n02 netbooted %d times, want 2 (power cycle, then off/on)", st.NetBoots)
	}
	if _, err := env.Images.Root(ctx, "r01n02"); !errors.Is(err, imagestore.ErrNoRoot) {
		t.Errorf("root of r01n02 after the undo: %v, want ErrNoRoot", err)
	}
	p, err := env.Netboot.Store().Get("02:52:46:01:00:02")
	if err != nil || p.Mode != netboot.ModeLocal {
		t.Errorf("boot profile of r01n02 after the undo = %+v, %v; want local", p, err)
	}
	saveHistory(t, env, workflows.ProvisionWorkflowID("r01n01"), "provision-permits-ok.json")
	saveHistory(t, env, workflows.ProvisionWorkflowID("r01n02"), "provision-permits-checkin-timeout.json")
	saveHistory(t, env, workflows.RolloutWorkflowID(sum.RolloutID), "rollout-one-failure.json")
	saveHistory(t, env, workflows.RackRolloutWorkflowID(sum.RolloutID, "r01"), "rackrollout-one-failure.json")
	saveHistory(t, env, workflows.RackLimiterWorkflowID("r01"), "racklimiter-running.json")
}

// httpRequests is the netboot service's count of HTTP requests answered on
// route (the ServeMux pattern) with code, from its /metrics registry.
func httpRequests(t *testing.T, g prometheus.Gatherer, route, code string) float64 {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "rackflow_netboot_http_requests_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["route"] == route && labels["code"] == code {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}
