package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/rackflow/rackflow/workflows"
)

func TestPrintIdentifyStatusInventoryColumn(t *testing.T) {
	var out bytes.Buffer
	a := app()
	a.Writer = &out
	at := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	st := workflows.IdentifyStatus{Scope: "r01", Total: 3, Assignments: []workflows.Assignment{
		{Slot: 1, Name: "r01n01", IP: "10.0.0.1", MAC: "02:00:00:00:00:01"},
		{Slot: 2, Name: "r01n02", IP: "10.0.0.2", MAC: "02:00:00:00:00:02", Confirmed: at, ConfirmedFrom: "10.0.0.2", Recorded: true},
		{Slot: 3, Name: "r01n03", IP: "10.0.0.3", MAC: "02:00:00:00:00:03", Confirmed: at, ConfirmedFrom: "10.0.0.3", RecordError: "MAC 02:00:00:00:00:03 is node r09n01's"},
	}}
	if err := printIdentifyStatus(cli.NewContext(a, nil, nil), st); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(out.String(), "\n")
	for i, want := range []string{"INVENTORY", "r01n01", "recorded", "not recorded: MAC 02:00:00:00:00:03 is node r09n01's"} {
		if !strings.Contains(lines[i], want) {
			t.Fatalf("line %d %q does not say %q:\n%s", i, lines[i], want, out.String())
		}
	}
	if f := strings.Fields(lines[1]); f[len(f)-1] != "-" {
		t.Fatalf("unconfirmed assignment's inventory column: %q", lines[1])
	}
}
