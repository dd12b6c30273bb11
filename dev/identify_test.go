package dev

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/rackflow/rackflow/netboot"
	"github.com/rackflow/rackflow/workflows"
)

// TestIdentifyOverHTTP identifies machines of a rack as their agents would
// after a USB insertion: POST /v1/identify on the netboot service becomes an
// Update of identify/<scope> on the embedded server. Slot order, a skipped
// dead-on-arrival position, a repeated call, an undo, and refusals (wrong
// token, no identification running) follow the Purdue procedure.
func TestIdentifyOverHTTP(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	env := startEnv(ctx, t, 1, time.Minute, nil)
	key, err := os.ReadFile(filepath.Join(env.opts.StateDir, "checkin.key"))
	if err != nil {
		t.Fatal(err)
	}
	const scope = "r09"
	plan := []workflows.PlanEntry{{Name: "r09n01", IP: "10.9.0.11"}, {Name: "r09n02", IP: "10.9.0.12"}, {Name: "r09n03", IP: "10.9.0.13"}, {Name: "r09n04", IP: "10.9.0.14"}}
	if _, err := env.Client.StartIdentify(ctx, workflows.IdentifyInput{Scope: scope, Plan: plan}); err != nil {
		t.Fatal(err)
	}
	post := func(mac, scope, token string) (int, netboot.IdentifyAssignment) {
		t.Helper()
		body, _ := json.Marshal(netboot.IdentifyRequest{MAC: mac, Scope: scope, Token: token})
		resp, err := http.Post(env.Netboot.HTTPBase()+"/v1/identify", "application/json", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var a netboot.IdentifyAssignment
		if resp.StatusCode == http.StatusOK {
			if err := json.NewDecoder(resp.Body).Decode(&a); err != nil {
				t.Fatal(err)
			}
		}
		return resp.StatusCode, a
	}
	token := netboot.MintIdentifyToken(key, scope)
	expect := func(mac string, slot int) {
		t.Helper()
		status, a := post(mac, scope, token)
		if status != http.StatusOK || a.Slot != slot || a.Name != plan[slot-1].Name || a.MAC != mac {
			t.Fatalf("identify %s = %d %+v; want slot %d (%s)", mac, status, a, slot, plan[slot-1].Name)
		}
	}
	expect("52:54:00:00:09:01", 1)
	if err := env.Client.IdentifySkip(ctx, scope, 2); err != nil { // slot 2 is dead on arrival
		t.Fatal(err)
	}
	expect("52:54:00:00:09:02", 3)
	expect("52:54:00:00:09:01", 1)                                 // the same machine again: the same answer
	if err := env.Client.IdentifyUndo(ctx, scope, 3); err != nil { // slot 3 went to the wrong machine
		t.Fatal(err)
	}
	expect("52:54:00:00:09:03", 3)
	if status, _ := post("52:54:00:00:09:04", scope, netboot.MintIdentifyToken(key, "r08")); status != http.StatusForbidden {
		t.Errorf("another scope's token: HTTP %d, want 403", status)
	}
	if status, _ := post("52:54:00:00:09:04", "r08", netboot.MintIdentifyToken(key, "r08")); status != http.StatusConflict {
		t.Errorf("a scope without identification: HTTP %d, want 409", status)
	}
	if err := env.Client.IdentifyFinish(ctx, scope); err != nil {
		t.Fatal(err)
	}
	res, err := env.Client.WaitIdentify(ctx, scope)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, a := range res.Assignments {
		got = append(got, a.Name+"="+a.MAC)
	}
	want := []string{"r09n01=52:54:00:00:09:01", "r09n03=52:54:00:00:09:03"}
	if !slices.Equal(got, want) || !slices.Equal(res.Skipped, []int{2}) {
		t.Fatalf("result: assignments %v skipped %v; want %v and [2]", got, res.Skipped, want)
	}
	saveHistory(t, env, workflows.IdentifyWorkflowID(scope), "identify-finished.json")
}
