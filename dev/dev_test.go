package dev

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"go.temporal.io/api/enums/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/converter"

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

// TestProvisionVirtualRack provisions 4 virtual nodes through the real
// embedded Temporal server, worker, netboot service and Redfish emulators,
// then checks through the Temporal API that 4 Provision workflows completed
// with the right search attributes.
func TestProvisionVirtualRack(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	env, err := Start(ctx, Options{
		StateDir: t.TempDir(), Nodes: 4, InMemory: true, Store: "dir",
		FrontendAddr: "127.0.0.1:0", DHCPAddr: "127.0.0.1:0", TFTPAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0",
		BMCPort: freePort(t), ImageSize: 1 << 20, CheckInTimeout: 2 * time.Minute,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer env.Close()
	version, err := LatestVersion(ctx, env.Images, DemoImage)
	if err != nil || version != "v2" {
		t.Fatalf("latest version = %q, %v", version, err)
	}
	var out bytes.Buffer
	sum := env.ProvisionAll(ctx, DemoImage, version, &out)
	t.Log("\n" + out.String())
	if sum.Provisioned != 4 || len(sum.Failed) != 0 {
		t.Fatalf("%s; failed: %v", sum, sum.Failed)
	}
	if !strings.HasPrefix(sum.String(), "provisioned 4/4 nodes in ") {
		t.Errorf("summary line = %q", sum)
	}

	// Every node's root holds the exact bytes of the version.
	for _, n := range env.Inventory.Nodes {
		root, err := env.Images.Root(ctx, n.Name)
		if err != nil || root.Version != "v2" {
			t.Errorf("%s root = %+v, %v", n.Name, root, err)
		}
	}

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

	st, err := env.Client.Status(ctx, nil)
	if err != nil || len(st) != 4 || st[0].Phase != "provisioned" || st[0].Version != "v2" {
		t.Errorf("status = %+v, %v", st, err)
	}
}
