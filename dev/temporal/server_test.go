package devtemporal

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

// The test workflow: upserts RackflowNode, then waits for one signal.
const (
	testWorkflowName = "DevTemporalWaitForSignal"
	testTaskQueue    = "devtemporal-test"
	testSignalName   = "proceed"
	testQueryName    = "state"
)

var nodeKey = temporal.NewSearchAttributeKeyKeyword("RackflowNode")

func waitForSignal(ctx workflow.Context, node string) (string, error) {
	state := "starting"
	if err := workflow.SetQueryHandler(ctx, testQueryName, func() (string, error) { return state, nil }); err != nil {
		return "", err
	}
	if err := workflow.UpsertTypedSearchAttributes(ctx, nodeKey.ValueSet(node)); err != nil {
		return "", err
	}
	state = "waiting"
	var payload string
	workflow.GetSignalChannel(ctx, testSignalName).Receive(ctx, &payload)
	return "done:" + payload, nil
}

var baseAttrs = map[string]enumspb.IndexedValueType{
	"RackflowNode":  enumspb.INDEXED_VALUE_TYPE_KEYWORD,
	"RackflowRack":  enumspb.INDEXED_VALUE_TYPE_KEYWORD,
	"RackflowPhase": enumspb.INDEXED_VALUE_TYPE_KEYWORD,
}

func TestStartInMemoryWithUI(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()

	before := memSnapshot()
	began := time.Now()
	s, err := Start(ctx, Config{
		FrontendAddr:     "127.0.0.1:0", // Start picks free ports
		UIAddr:           "127.0.0.1:0",
		SearchAttributes: baseAttrs,
		Logger:           testLogger(t),
	})
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Logf("in-memory Start with UI took %s; %s", time.Since(began).Round(time.Millisecond), memSnapshot().since(before))
	defer func() { _ = s.Stop() }()

	c := dialTest(t, s)
	assertRetention(ctx, t, c, DefaultNamespace, DefaultRetention)
	assertAttributes(ctx, t, c, DefaultNamespace, baseAttrs)

	t.Run("UI serves the app", func(t *testing.T) {
		if !strings.HasPrefix(s.UIURL(), "http://127.0.0.1:") {
			t.Fatalf("UIURL() = %q", s.UIURL())
		}
		body := httpGet(ctx, t, s.UIURL()+"/")
		if !strings.Contains(strings.ToLower(body), "<html") {
			t.Errorf("GET / did not return an HTML page: %.200q", body)
		}
	})
	t.Run("UI reaches the frontend", func(t *testing.T) {
		body := httpGet(ctx, t, s.UIURL()+"/api/v1/namespaces/"+DefaultNamespace)
		if !strings.Contains(body, DefaultNamespace) {
			t.Errorf("namespace API answer does not name %q: %.300q", DefaultNamespace, body)
		}
	})

	if strings.HasSuffix(s.FrontendAddr(), ":0") {
		t.Errorf("FrontendAddr() = %q, want the picked port", s.FrontendAddr())
	}
	c.Close()
	stopTest(t, s)
	if err := s.Stop(); err != nil {
		t.Fatalf("second Stop: %v", err)
	}
	for _, addr := range []string{s.FrontendAddr(), strings.TrimPrefix(s.UIURL(), "http://")} {
		ip, port, _ := splitIPPort(addr)
		if err := checkPortFree("test", ip, port); err != nil {
			t.Errorf("after Stop: %v", err)
		}
	}
}

func TestRestartResumesWorkflowAndAddsAttributes(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Second)
	defer cancel()
	dir := t.TempDir()
	addr := freeAddr(t)
	cfg := Config{
		StateDir:         dir,
		FrontendAddr:     addr,
		SearchAttributes: baseAttrs,
		Logger:           testLogger(t),
	}

	// First start: new database, workflow left waiting for a signal.
	began := time.Now()
	s1, err := Start(ctx, cfg)
	if err != nil {
		t.Fatalf("first Start: %v", err)
	}
	t.Logf("first Start (new database) took %s", time.Since(began).Round(time.Millisecond))
	// A second server on the same state dir is refused while s1 runs.
	if s, err := Start(ctx, Config{StateDir: dir, FrontendAddr: freeAddr(t), Logger: testLogger(t)}); err == nil {
		_ = s.Stop()
		t.Fatal("second server on a state dir in use started")
	} else if !strings.Contains(err.Error(), "is in use by another Temporal server") {
		t.Errorf("second server on a state dir in use: error = %v", err)
	}
	c1 := dialTest(t, s1)
	w1 := startWorker(t, c1)
	run, err := c1.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
		ID:        "devtemporal/restart",
		TaskQueue: testTaskQueue,
		TypedSearchAttributes: temporal.NewSearchAttributes(
			temporal.NewSearchAttributeKeyKeyword("RackflowRack").ValueSet("r01"),
		),
	}, testWorkflowName, "r01n01")
	if err != nil {
		t.Fatalf("ExecuteWorkflow: %v", err)
	}
	waitQuery(ctx, t, c1, run.GetID(), "waiting")
	waitVisible(ctx, t, c1, `RackflowNode = 'r01n01' AND RackflowRack = 'r01'`, 1)
	w1.Stop()
	c1.Close()
	stopTest(t, s1)

	for _, name := range []string{DBFileName, DBFileName + "-wal"} {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			t.Errorf("state dir: %v", err)
		}
	}

	// Second start, same dir and port: one more attribute, longer retention.
	cfg.SearchAttributes = map[string]enumspb.IndexedValueType{
		"RackflowNode":    enumspb.INDEXED_VALUE_TYPE_KEYWORD,
		"RackflowRack":    enumspb.INDEXED_VALUE_TYPE_KEYWORD,
		"RackflowPhase":   enumspb.INDEXED_VALUE_TYPE_KEYWORD,
		"RackflowRollout": enumspb.INDEXED_VALUE_TYPE_KEYWORD,
		"RackflowAttempt": enumspb.INDEXED_VALUE_TYPE_INT,
	}
	cfg.Retention = 45 * 24 * time.Hour
	began = time.Now()
	s2, err := Start(ctx, cfg)
	if err != nil {
		t.Fatalf("second Start: %v", err)
	}
	t.Logf("second Start (existing database, 2 new attributes, new retention) took %s", time.Since(began).Round(time.Millisecond))
	c2 := dialTest(t, s2)
	// The new attributes are usable at once (the frontend validates them
	// against its namespace cache).
	if _, err := c2.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
		ID:        "devtemporal/new-attributes",
		TaskQueue: testTaskQueue,
		TypedSearchAttributes: temporal.NewSearchAttributes(
			temporal.NewSearchAttributeKeyKeyword("RackflowRollout").ValueSet("ro-1"),
			temporal.NewSearchAttributeKeyInt64("RackflowAttempt").ValueSet(2),
		),
	}, testWorkflowName, "r01n02"); err != nil {
		t.Fatalf("ExecuteWorkflow with the new attributes right after Start: %v", err)
	}
	assertRetention(ctx, t, c2, DefaultNamespace, cfg.Retention)
	assertAttributes(ctx, t, c2, DefaultNamespace, cfg.SearchAttributes)

	w2 := startWorker(t, c2)
	if err := c2.SignalWorkflow(ctx, run.GetID(), "", testSignalName, "after-restart"); err != nil {
		t.Fatalf("SignalWorkflow: %v", err)
	}
	var result string
	if err := c2.GetWorkflow(ctx, run.GetID(), run.GetRunID()).Get(ctx, &result); err != nil {
		t.Fatalf("workflow result: %v", err)
	}
	if result != "done:after-restart" {
		t.Errorf("result = %q, want %q", result, "done:after-restart")
	}
	w2.Stop()
	c2.Close()
	stopTest(t, s2)

	// Third start, nothing to change: registration is idempotent.
	began = time.Now()
	s3, err := Start(ctx, cfg)
	if err != nil {
		t.Fatalf("third Start: %v", err)
	}
	t.Logf("third Start (nothing to change) took %s", time.Since(began).Round(time.Millisecond))
	c3 := dialTest(t, s3)
	assertAttributes(ctx, t, c3, DefaultNamespace, cfg.SearchAttributes)
	assertRetention(ctx, t, c3, DefaultNamespace, cfg.Retention)
	c3.Close()
	stopTest(t, s3)
}

func TestStartRefusesTakenPorts(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	takenAddr := taken.Addr().String()

	tests := []struct {
		name string
		cfg  Config
	}{
		{name: "frontend", cfg: Config{FrontendAddr: takenAddr}},
		{name: "UI", cfg: Config{FrontendAddr: freeAddr(t), UIAddr: takenAddr}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			tt.cfg.Logger = testLogger(t)
			s, err := Start(ctx, tt.cfg)
			if err == nil {
				_ = s.Stop()
				t.Fatal("Start succeeded on a taken port")
			}
			want := tt.name + " address " + takenAddr + " is not available"
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error = %q, want it to contain %q", err, want)
			}
		})
	}
}

func TestStartRejectsConflictingAttributeType(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	dir := t.TempDir()
	cfg := Config{StateDir: dir, FrontendAddr: freeAddr(t), SearchAttributes: baseAttrs, Logger: testLogger(t)}
	s, err := Start(ctx, cfg)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	stopTest(t, s)

	cfg.SearchAttributes = map[string]enumspb.IndexedValueType{"RackflowNode": enumspb.INDEXED_VALUE_TYPE_INT}
	s, err = Start(ctx, cfg)
	if err == nil {
		stopTest(t, s)
		t.Fatal("Start accepted RackflowNode as Int after it was registered as Keyword")
	}
	if !strings.Contains(err.Error(), `"RackflowNode" exists`) {
		t.Errorf("error = %v", err)
	}
	// The failed Start must not leave the frontend port bound.
	ip, port, _ := splitIPPort(cfg.FrontendAddr)
	if err := checkPortFree("frontend", ip, port); err != nil {
		t.Errorf("after failed Start: %v", err)
	}
}
