package devtemporal

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/operatorservice/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	sdklog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
)

func freeAddr(t *testing.T) string {
	t.Helper()
	port, err := freePort("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	return hostPort("127.0.0.1", port)
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
}

func stopTest(t *testing.T, s *Server) {
	t.Helper()
	began := time.Now()
	if err := s.Stop(); err != nil {
		t.Errorf("Stop: %v", err)
	}
	t.Logf("Stop took %s", time.Since(began).Round(time.Millisecond))
}

func dialTest(t *testing.T, s *Server) client.Client {
	t.Helper()
	c, err := client.Dial(client.Options{
		HostPort:  s.FrontendAddr(),
		Namespace: DefaultNamespace,
		Logger:    sdklog.NewStructuredLogger(testLogger(t)),
	})
	if err != nil {
		t.Fatalf("dial %s: %v", s.FrontendAddr(), err)
	}
	t.Cleanup(c.Close)
	return c
}

func startWorker(t *testing.T, c client.Client) worker.Worker {
	t.Helper()
	w := worker.New(c, testTaskQueue, worker.Options{})
	w.RegisterWorkflowWithOptions(waitForSignal, workflow.RegisterOptions{Name: testWorkflowName})
	if err := w.Start(); err != nil {
		t.Fatalf("worker start: %v", err)
	}
	return w
}

func assertRetention(ctx context.Context, t *testing.T, c client.Client, ns string, want time.Duration) {
	t.Helper()
	resp, err := c.WorkflowService().DescribeNamespace(ctx, &workflowservice.DescribeNamespaceRequest{Namespace: ns})
	if err != nil {
		t.Fatalf("DescribeNamespace: %v", err)
	}
	got := resp.GetConfig().GetWorkflowExecutionRetentionTtl().AsDuration()
	if got != want {
		t.Errorf("retention of %q = %s, want %s", ns, got, want)
	}
	if got < 30*24*time.Hour {
		t.Errorf("retention of %q = %s, below 30 days", ns, got)
	}
}

func assertAttributes(ctx context.Context, t *testing.T, c client.Client, ns string, want map[string]enumspb.IndexedValueType) {
	t.Helper()
	resp, err := c.OperatorService().ListSearchAttributes(ctx, &operatorservice.ListSearchAttributesRequest{Namespace: ns})
	if err != nil {
		t.Fatalf("ListSearchAttributes: %v", err)
	}
	got := resp.GetCustomAttributes()
	for name, typ := range want {
		if got[name] != typ {
			t.Errorf("search attribute %q = %s, want %s", name, got[name], typ)
		}
	}
	if len(got) != len(want) {
		t.Errorf("custom search attributes = %v, want exactly %v", got, want)
	}
}

func waitQuery(ctx context.Context, t *testing.T, c client.Client, id, want string) {
	t.Helper()
	var last string
	var lastErr error
	for ctx.Err() == nil {
		v, err := c.QueryWorkflow(ctx, id, "", testQueryName)
		if err == nil {
			lastErr = v.Get(&last)
			if last == want {
				return
			}
		} else {
			lastErr = err
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("query %s: state %q (last error %v), want %q", id, last, lastErr, want)
}

func waitVisible(ctx context.Context, t *testing.T, c client.Client, query string, want int) {
	t.Helper()
	var n int
	for ctx.Err() == nil {
		resp, err := c.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{Query: query})
		if err != nil {
			t.Fatalf("ListWorkflow %q: %v", query, err)
		}
		if n = len(resp.GetExecutions()); n == want {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("ListWorkflow %q: %d executions, want %d", query, n, want)
}

func httpGet(ctx context.Context, t *testing.T, url string) string {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: reading body: %v", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: status %d, want 200: %.300q", url, resp.StatusCode, body)
	}
	return string(body)
}

// memSnapshot records Go heap figures and the process RSS.
type mem struct {
	heapInuse, sys uint64
	rssKB          int64
}

func memSnapshot() mem {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return mem{heapInuse: ms.HeapInuse, sys: ms.Sys, rssKB: rssKB()}
}

func (m mem) since(before mem) string {
	const mib = 1 << 20
	return fmt.Sprintf("Go heap in use %d MiB (%+d), Go sys %d MiB, process RSS %d MiB (%+d)",
		m.heapInuse/mib, (int64(m.heapInuse)-int64(before.heapInuse))/mib,
		m.sys/mib, m.rssKB/1024, (m.rssKB-before.rssKB)/1024)
}

func rssKB() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			n, _ := strconv.ParseInt(f[1], 10, 64)
			return n
		}
	}
	return 0
}
