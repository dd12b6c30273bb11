package devtemporal

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
)

// TestBurst measures how the embedded server copes with a rollout-sized
// burst: N workflows started at once, each upserting a search attribute and
// then waiting for a signal, then all signalled. It only runs when
// DEVTEMPORAL_BURST=N is set (it takes minutes for N=1000) and logs rates;
// it asserts only that every workflow completes.
//
//	DEVTEMPORAL_BURST=1000 DEVTEMPORAL_BURST_FILE=1 go test -run TestBurst -v ./dev/temporal/
func TestBurst(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("DEVTEMPORAL_BURST"))
	if n <= 0 {
		t.Skip("set DEVTEMPORAL_BURST=<workflows> to run")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()

	stateDir := "" // in memory unless DEVTEMPORAL_BURST_FILE=1
	if os.Getenv("DEVTEMPORAL_BURST_FILE") == "1" {
		stateDir = t.TempDir()
	}
	if conns, _ := strconv.Atoi(os.Getenv("DEVTEMPORAL_BURST_CONNS")); conns > 0 {
		defer func(old int) { fileMaxConns = old }(fileMaxConns)
		fileMaxConns = conns
	}
	t.Logf("%d workflows, state dir %q, %d connections", n, stateDir, fileMaxConns)
	before := memSnapshot()
	s, err := Start(ctx, Config{StateDir: stateDir, FrontendAddr: freeAddr(t), SearchAttributes: baseAttrs, Logger: testLogger(t)})
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	defer stopTest(t, s)
	c := dialTest(t, s)
	w := startWorker(t, c)
	defer w.Stop()

	const parallel = 64
	run := func(what string, f func(i int) error) {
		began := time.Now()
		var wg sync.WaitGroup
		var next, failed atomic.Int64
		var firstErr atomic.Value
		for range parallel {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := int(next.Add(1)) - 1; i < n; i = int(next.Add(1)) - 1 {
					if err := f(i); err != nil {
						failed.Add(1)
						firstErr.CompareAndSwap(nil, err)
					}
				}
			}()
		}
		stop := make(chan struct{})
		go func() {
			tick := time.NewTicker(5 * time.Second)
			defer tick.Stop()
			for {
				select {
				case <-stop:
					return
				case <-tick.C:
					t.Logf("  %s: %s %d of %d", what, time.Since(began).Round(time.Second), min(int(next.Load()), n)-parallel, n)
				}
			}
		}()
		wg.Wait()
		close(stop)
		d := time.Since(began)
		t.Logf("%s %d workflows: %s (%.0f/s), %d failed", what, n, d.Round(time.Millisecond), float64(n)/d.Seconds(), failed.Load())
		if failed.Load() > 0 {
			t.Fatalf("%s: first error: %v", what, firstErr.Load())
		}
	}
	id := func(i int) string { return fmt.Sprintf("burst/%05d", i) }

	run("started", func(i int) error {
		_, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: id(i), TaskQueue: testTaskQueue}, testWorkflowName, id(i))
		return err
	})
	began := time.Now()
	lastLog := began
	for {
		resp, err := c.CountWorkflow(ctx, &workflowservice.CountWorkflowExecutionsRequest{Query: "RackflowNode STARTS_WITH 'burst/'"})
		if err != nil {
			t.Fatalf("CountWorkflow: %v", err)
		}
		if int(resp.GetCount()) == n {
			break
		}
		if time.Since(lastLog) > 5*time.Second {
			lastLog = time.Now()
			t.Logf("%s: %d waiting", time.Since(began).Round(time.Second), resp.GetCount())
		}
		time.Sleep(250 * time.Millisecond)
	}
	t.Logf("all %d waiting (first task done, attribute visible) %s after the last start", n, time.Since(began).Round(time.Millisecond))
	t.Logf("memory with %d open workflows: %s", n, memSnapshot().since(before))
	run("signalled", func(i int) error {
		return c.SignalWorkflow(ctx, id(i), "", testSignalName, "go")
	})
	run("completed", func(i int) error {
		var out string
		return c.GetWorkflow(ctx, id(i), "").Get(ctx, &out)
	})
}
