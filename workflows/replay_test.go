package workflows

import (
	"path/filepath"
	"testing"

	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
)

// TestReplayRecordedHistories replays histories recorded from real runs
// (dev integration tests with -record-history) against the current workflow
// code: a change that breaks determinism for running workflows fails here.
// Record new histories when a workflow changes behind workflow.GetVersion.
func TestReplayRecordedHistories(t *testing.T) {
	files, err := filepath.Glob("testdata/*.json")
	if err != nil || len(files) == 0 {
		t.Fatalf("no recorded histories in testdata (%v)", err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			r := worker.NewWorkflowReplayer()
			for name, fn := range map[string]any{"Provision": Provision, "Rollout": Rollout, "RackRollout": RackRollout, "RackLimiter": RackLimiter, "Release": Release, "Reinstall": Reinstall, "Identify": Identify, "IdentifyBoot": IdentifyBoot, "CheckoutExpiry": CheckoutExpiry} {
				r.RegisterWorkflowWithOptions(fn, workflow.RegisterOptions{Name: name})
			}
			if err := r.ReplayWorkflowHistoryFromJSONFile(nil, f); err != nil {
				t.Fatal(err)
			}
		})
	}
}
