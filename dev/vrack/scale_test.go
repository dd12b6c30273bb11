package vrack

import (
	"log/slog"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"
)

// TestScaleBoot boots many nodes at once through the real netboot servers
// (VRACK_SCALE_NODES, default 100; skipped with -short).
func TestScaleBoot(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	count := 100
	if v := os.Getenv("VRACK_SCALE_NODES"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 4000 {
			t.Fatalf("VRACK_SCALE_NODES=%q: want 1..4000", v)
		}
		count = n
	}
	g := startRigLevel(t, testSpecs(count), nil, slog.LevelWarn)
	ctx := testCtx(t, 10*time.Minute)
	start := time.Now()
	var wg sync.WaitGroup
	sem := make(chan struct{}, 32) // concurrent BMC sessions
	errs := make(chan error, count)
	for _, n := range g.rack.Nodes() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			if err := provision(ctx, n, "pxe"); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	powered := time.Since(start)
	got, err := g.sig.waitN(ctx, count)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d nodes: all powered on after %v, all checked in after %v", count, powered, time.Since(start))
	for _, c := range got {
		if c.Status != "ok" || c.Digest != g.digest {
			t.Errorf("check-in %+v", c)
		}
	}
	for _, n := range g.rack.Nodes() {
		if st, err := n.WaitFor(ctx, settled); err != nil || st.Phase != PhaseUp || st.CheckIns != 1 {
			t.Errorf("%s: %+v, %v", n.Name(), st, err)
		}
	}
}
