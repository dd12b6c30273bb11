package activities

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/rackflow/rackflow/activities/imagestore"
	"github.com/rackflow/rackflow/activities/inventory"
	"github.com/rackflow/rackflow/dev/vrack/redfishemu"
	"github.com/rackflow/rackflow/netboot"
	"github.com/rackflow/rackflow/netboot/swarm"
	"github.com/rackflow/rackflow/workflows"
)

// fixture: real dir image store, real boot-profile store, and a real Redfish
// BMC emulator (the virtual rack's) for node r01n01.
type fixture struct {
	acts    *Activities
	env     *testsuite.TestActivityEnvironment
	machine *redfishemu.Machine
	boot    *netboot.Store
	images  *imagestore.Dir
}

func newFixture(t *testing.T, password string) *fixture {
	t.Helper()
	dir := t.TempDir()
	log := slog.New(slog.DiscardHandler)
	images, err := imagestore.NewDir(filepath.Join(dir, "images"), log)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := images.CreateVersion(t.Context(), "demo", "v1", bytes.NewReader(bytes.Repeat([]byte("x"), 4096))); err != nil {
		t.Fatal(err)
	}
	boot, err := netboot.OpenStore(filepath.Join(dir, "netboot"))
	if err != nil {
		t.Fatal(err)
	}
	machine := redfishemu.NewMachine(redfishemu.TargetHdd, nil)
	bmcSrv, err := redfishemu.Start(redfishemu.Config{Addr: "127.0.0.1:0", Username: "admin", Password: "right", Machine: machine, Name: "r01n01"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { bmcSrv.Close() })
	doc := fmt.Sprintf(`credentials:
  c: {username: admin, password: %s}
racks:
  - name: r01
    credentials: c
    netboot: {server_ip: 127.0.0.1, subnet: 127.0.0.0/8}
nodes:
  - {name: r01n01, rack: r01, slot: 1, macs: ["02:52:46:01:00:01"], ip: 127.101.0.1, bmc: {driver: redfish, address: %q}}
`, password, bmcSrv.Addr())
	inv, err := inventory.Parse("test.yaml", []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	acts := &Activities{
		Inventory: inv, Images: images, Boot: boot, DialBMC: DialBMCLib(log),
		HTTPBase: "http://127.0.0.1:8880", CheckInKey: bytes.Repeat([]byte("k"), 32),
		Kernel: "vmlinuz", Initrd: "initrd.img", KernelArgs: []string{"console=ttyS0"}, Log: log,
	}
	var s testsuite.WorkflowTestSuite
	env := s.NewTestActivityEnvironment()
	env.RegisterActivity(acts)
	return &fixture{acts: acts, env: env, machine: machine, boot: boot, images: images}
}

func wantType(t *testing.T, err error, typ string) {
	t.Helper()
	if !workflows.IsApplicationError(err, typ) {
		t.Fatalf("error = %v, want ApplicationError %s", err, typ)
	}
	var app *temporal.ApplicationError
	if !errors.As(err, &app) || !app.NonRetryable() {
		t.Fatalf("error %v is retryable", err)
	}
}

func TestProvisionSteps(t *testing.T) {
	f := newFixture(t, "right")
	v, err := f.env.ExecuteActivity(f.acts.Clone, workflows.CloneInput{Node: "r01n01", Image: "demo", Version: "v1"})
	if err != nil {
		t.Fatal(err)
	}
	var root workflows.Root
	if err := v.Get(&root); err != nil || !strings.HasPrefix(root.Digest, "sha256:") || root.Size != 4096 {
		t.Fatalf("root = %+v, %v", root, err)
	}
	if _, err := f.env.ExecuteActivity(f.acts.Clone, workflows.CloneInput{Node: "r01n01", Image: "demo", Version: "v1"}); err != nil {
		t.Fatalf("second clone is not idempotent: %v", err)
	}
	v, err = f.env.ExecuteActivity(f.acts.Export, "r01n01")
	if err != nil {
		t.Fatal(err)
	}
	var exp workflows.ExportResult
	if err := v.Get(&exp); err != nil || exp.URL != "http://127.0.0.1:8880/exports/r01n01/image.raw" || exp.Digest != root.Digest {
		t.Fatalf("export = %+v, %v", exp, err)
	}
	in := workflows.SetBootInput{Node: "r01n01", Mode: workflows.BootInstall, ImageURL: exp.URL, Digest: exp.Digest, Run: "run-1"}
	if _, err := f.env.ExecuteActivity(f.acts.SetBoot, in); err != nil {
		t.Fatal(err)
	}
	p, err := f.boot.Get("02:52:46:01:00:01")
	if err != nil || p.Mode != netboot.ModeInstall || p.Args[0] != "console=ttyS0" {
		t.Fatalf("profile = %+v, %v", p, err)
	}
	args, err := netboot.ParseAgentArgs(p.Args)
	if err != nil || !netboot.VerifyToken(f.acts.CheckInKey, "r01n01", "run-1", args.Token) || args.ImageURL != exp.URL {
		t.Fatalf("agent args = %+v, %v", args, err)
	}
	// The identify profile: the same kernel, the agent in identify mode
	// with a token bound to the scope.
	if _, err := f.env.ExecuteActivity(f.acts.SetBoot, workflows.SetBootInput{Node: "r01n01", Mode: workflows.BootIdentify, Scope: "r01"}); err != nil {
		t.Fatal(err)
	}
	ip, err := f.boot.Get("02:52:46:01:00:01")
	if err != nil || ip.Mode != netboot.ModeInstall || ip.Kernel != p.Kernel {
		t.Fatalf("identify profile = %+v, %v", ip, err)
	}
	iargs, err := netboot.ParseIdentifyArgs(ip.Args)
	if err != nil || iargs.Scope != "r01" || iargs.URL != "http://127.0.0.1:8880/v1/identify" || !netboot.VerifyIdentifyToken(f.acts.CheckInKey, "r01", iargs.Token) {
		t.Fatalf("identify args = %+v, %v", iargs, err)
	}
	if _, err := netboot.ParseAgentArgs(ip.Args); err == nil {
		t.Fatal("an identify profile carries install arguments")
	}
	if _, err := f.env.ExecuteActivity(f.acts.PowerCycle, workflows.PowerCycleInput{Node: "r01n01"}); err != nil {
		t.Fatal(err)
	}
	on, boot, _ := f.machine.State()
	if !on || boot.Target != redfishemu.TargetPxe {
		t.Fatalf("after power cycle: on=%v boot=%+v, want on with a PXE override", on, boot)
	}
	for _, undo := range []func() error{
		func() error { _, err := f.env.ExecuteActivity(f.acts.Unexport, "r01n01"); return err },
		func() error { _, err := f.env.ExecuteActivity(f.acts.DestroyRoot, "r01n01"); return err },
		func() error { _, err := f.env.ExecuteActivity(f.acts.DestroyRoot, "r01n01"); return err },
	} {
		if err := undo(); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := f.acts.Images.Root(t.Context(), "r01n01"); err == nil {
		t.Fatal("root still there after DestroyRoot")
	}
}

func TestBadInputIsNonRetryableAndChangesNothing(t *testing.T) {
	f := newFixture(t, "right")
	tests := []struct {
		name string
		run  func() error
		typ  string
	}{
		{"unknown node", func() error { _, err := f.env.ExecuteActivity(f.acts.LookupNode, "r09n01"); return err }, workflows.ErrUnknownNode},
		{"unknown image", func() error {
			_, err := f.env.ExecuteActivity(f.acts.Clone, workflows.CloneInput{Node: "r01n01", Image: "centos", Version: "v1"})
			return err
		}, workflows.ErrUnknownImage},
		{"unknown version", func() error {
			_, err := f.env.ExecuteActivity(f.acts.Clone, workflows.CloneInput{Node: "r01n01", Image: "demo", Version: "v9"})
			return err
		}, workflows.ErrUnknownVersion},
		{"invalid name", func() error {
			_, err := f.env.ExecuteActivity(f.acts.Clone, workflows.CloneInput{Node: "r01n01", Image: "../etc", Version: "v1"})
			return err
		}, workflows.ErrInvalidName},
		{"set boot of unknown node", func() error {
			_, err := f.env.ExecuteActivity(f.acts.SetBoot, workflows.SetBootInput{Node: "nope", Mode: workflows.BootLocal})
			return err
		}, workflows.ErrUnknownNode},
		{"identify boot with an invalid scope", func() error {
			_, err := f.env.ExecuteActivity(f.acts.SetBoot, workflows.SetBootInput{Node: "r01n01", Mode: workflows.BootIdentify, Scope: "R 1"})
			return err
		}, workflows.ErrInvalidName},
		{"unknown boot mode", func() error {
			_, err := f.env.ExecuteActivity(f.acts.SetBoot, workflows.SetBootInput{Node: "r01n01", Mode: "floppy"})
			return err
		}, workflows.ErrInvalidName},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wantType(t, tt.run(), tt.typ)
		})
	}
	if _, err := f.acts.Images.Root(t.Context(), "r01n01"); err == nil {
		t.Error("a failed clone left a root")
	}
	if entries, _ := os.ReadDir(f.boot.ExportsDir()); len(entries) != 0 {
		t.Errorf("exports after bad input: %v", entries)
	}
}

func TestBadBMCCredentials(t *testing.T) {
	f := newFixture(t, "not-the-password")
	_, err := f.env.ExecuteActivity(f.acts.PowerCycle, workflows.PowerCycleInput{Node: "r01n01"})
	wantType(t, err, workflows.ErrBMCAuth)
	if strings.Contains(err.Error(), "not-the-password") {
		t.Errorf("error shows the password: %v", err)
	}
	if on, _, _ := f.machine.State(); on {
		t.Error("node powered on with bad credentials")
	}
}

func TestCloneReplace(t *testing.T) {
	f := newFixture(t, "right")
	if _, err := f.images.CreateVersion(t.Context(), "demo", "v2", strings.NewReader("v2 content")); err != nil {
		t.Fatal(err)
	}
	if _, err := f.env.ExecuteActivity(f.acts.Clone, workflows.CloneInput{Node: "r01n01", Image: "demo", Version: "v1"}); err != nil {
		t.Fatal(err)
	}
	_, err := f.env.ExecuteActivity(f.acts.Clone, workflows.CloneInput{Node: "r01n01", Image: "demo", Version: "v2"})
	wantType(t, err, workflows.ErrRootConflict)
	v, err := f.env.ExecuteActivity(f.acts.Clone, workflows.CloneInput{Node: "r01n01", Image: "demo", Version: "v2", Replace: true})
	if err != nil {
		t.Fatal(err)
	}
	var root workflows.Root
	if err := v.Get(&root); err != nil || root.Version != "v2" || root.Size != int64(len("v2 content")) {
		t.Fatalf("replaced root = %+v, %v", root, err)
	}
}

func TestPowerOff(t *testing.T) {
	f := newFixture(t, "right")
	if _, err := f.env.ExecuteActivity(f.acts.PowerCycle, workflows.PowerCycleInput{Node: "r01n01"}); err != nil {
		t.Fatal(err)
	}
	if on, _, _ := f.machine.State(); !on {
		t.Fatal("node not on after a power cycle")
	}
	_, _, gen := f.machine.State()
	for i := range 2 {
		if _, err := f.env.ExecuteActivity(f.acts.PowerOff, "r01n01"); err != nil {
			t.Fatalf("power off %d: %v", i+1, err)
		}
		on, _, g := f.machine.State()
		if on {
			t.Fatalf("power off %d: node still on", i+1)
		}
		if i == 1 && g != gen+1 {
			t.Errorf("second power off touched the off node (generation %d → %d)", gen, g)
		}
	}
}

func TestPowerOffErrors(t *testing.T) {
	f := newFixture(t, "not-the-password")
	_, err := f.env.ExecuteActivity(f.acts.PowerOff, "r01n01")
	wantType(t, err, workflows.ErrBMCAuth)
	if strings.Contains(err.Error(), "not-the-password") {
		t.Errorf("error shows the password: %v", err)
	}
	_, err = f.env.ExecuteActivity(f.acts.PowerOff, "r09n01")
	wantType(t, err, workflows.ErrUnknownNode)
}

// newSeeder starts a loopback seeder announcing to the default tracker
// URL; it is closed when the test ends.
func newSeeder(t *testing.T) *swarm.Seeder {
	t.Helper()
	seeder, err := swarm.NewSeeder(swarm.SeederConfig{ListenAddr: "127.0.0.1:0", Announce: "http://127.0.0.1:8880/announce"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = seeder.Close() })
	return seeder
}

// TestExportSwarm: with a real seeder, Export publishes its run's .torrent
// whose info hash and web seed the boot profile carries (a retry rewrites
// the same file); Unexport withdraws it.
func TestExportSwarm(t *testing.T) {
	f := newFixture(t, "right")
	seeder := newSeeder(t)
	f.acts.Swarm, f.acts.SeedFor = seeder, 2*time.Minute
	if _, err := f.env.ExecuteActivity(f.acts.Clone, workflows.CloneInput{Node: "r01n01", Image: "demo", Version: "v1"}); err != nil {
		t.Fatal(err)
	}
	var exp workflows.ExportResult
	for range 2 { // a retried Export
		v, err := f.env.ExecuteActivity(f.acts.Export, "r01n01")
		if err != nil {
			t.Fatal(err)
		}
		if err := v.Get(&exp); err != nil || exp.TorrentURL != "http://127.0.0.1:8880/torrents/r01n01/"+testRun+".torrent" || !swarm.ValidInfoHash(exp.InfoHash) {
			t.Fatalf("export = %+v, %v", exp, err)
		}
	}
	if files := torrentFiles(t, f.boot); !slices.Equal(files, []string{"r01n01/" + testRun + ".torrent"}) {
		t.Fatalf(".torrents %v, want the run's only", files)
	}
	data, err := os.ReadFile(filepath.Join(f.boot.TorrentsDir(), "r01n01", testRun+".torrent"))
	if err != nil {
		t.Fatal(err)
	}
	mi, info, err := swarm.Decode(data, exp.InfoHash)
	if err != nil || info.Length != 4096 || len(mi.UrlList) != 1 || mi.UrlList[0] != exp.URL || mi.Announce != "http://127.0.0.1:8880/announce" {
		t.Fatalf("torrent = %+v, %+v, %v", mi, info, err)
	}
	in := workflows.SetBootInput{Node: "r01n01", Mode: workflows.BootInstall, ImageURL: exp.URL, Digest: exp.Digest, Run: "run-1",
		TorrentURL: exp.TorrentURL, InfoHash: exp.InfoHash}
	if _, err := f.env.ExecuteActivity(f.acts.SetBoot, in); err != nil {
		t.Fatal(err)
	}
	p, err := f.boot.Get("02:52:46:01:00:01")
	if err != nil {
		t.Fatal(err)
	}
	args, err := netboot.ParseAgentArgs(p.Args)
	if err != nil || args.TorrentURL != exp.TorrentURL || args.InfoHash != exp.InfoHash || args.SeedFor != 2*time.Minute {
		t.Fatalf("agent args = %+v, %v", args, err)
	}
	if _, err := f.env.ExecuteActivity(f.acts.Unexport, "r01n01"); err != nil {
		t.Fatal(err)
	}
	if files := torrentFiles(t, f.boot); len(files) != 0 {
		t.Fatalf(".torrents after Unexport: %v", files)
	}
	if _, ok := seeder.Stats(exp.Digest); ok {
		t.Fatal("still seeding after Unexport")
	}
}

// testRun is the workflow run ID the SDK's activity test environment gives
// every activity.
const testRun = "default-test-run-id"

// torrentFiles lists the store's .torrents as "<node>/<file>", sorted.
func torrentFiles(t *testing.T, boot *netboot.Store) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(boot.TorrentsDir(), "*", "*"))
	if err != nil {
		t.Fatal(err)
	}
	for i, f := range files {
		files[i] = filepath.Base(filepath.Dir(f)) + "/" + filepath.Base(f)
	}
	return files
}

// TestEndSeeding: ending a run's seeding withdraws that run's .torrent
// only: a newer run's .torrent of the same node, the export and the
// worker's seeding stay. It is idempotent and refuses a bad node or run
// name before withdrawing anything.
func TestEndSeeding(t *testing.T) {
	f := newFixture(t, "right")
	seeder := newSeeder(t)
	f.acts.Swarm = seeder
	if _, err := f.env.ExecuteActivity(f.acts.Clone, workflows.CloneInput{Node: "r01n01", Image: "demo", Version: "v1"}); err != nil {
		t.Fatal(err)
	}
	v, err := f.env.ExecuteActivity(f.acts.Export, "r01n01")
	if err != nil {
		t.Fatal(err)
	}
	var exp workflows.ExportResult
	if err := v.Get(&exp); err != nil {
		t.Fatal(err)
	}
	// A newer operation on the node (another rollout) exported it again.
	const newer = "0193f6a2-6c1e-7d0b-9a4e-3f1c2b5d8e02"
	if err := f.boot.PutTorrent("r01n01", newer, []byte("d4:infod6:lengthi1eee")); err != nil {
		t.Fatal(err)
	}
	ours := workflows.Torrent{Node: "r01n01", Run: testRun}
	both := []string{"r01n01/" + newer + ".torrent", "r01n01/" + testRun + ".torrent"}

	for _, bad := range []workflows.Torrent{{Node: "../x", Run: testRun}, {Node: "r01n01", Run: "../" + newer}, {Node: "r01n01", Run: ""}, {Node: "r01n01", Run: "x.torrent"}} {
		_, err = f.env.ExecuteActivity(f.acts.EndSeeding, []workflows.Torrent{ours, bad})
		wantType(t, err, workflows.ErrInvalidName)
		if files := torrentFiles(t, f.boot); !slices.Equal(files, both) {
			t.Fatalf("a refused EndSeeding(%+v) left %v, want %v", bad, files, both)
		}
	}
	for i := range 2 { // the second call finds nothing to do
		if _, err := f.env.ExecuteActivity(f.acts.EndSeeding, []workflows.Torrent{ours}); err != nil {
			t.Fatalf("EndSeeding #%d: %v", i+1, err)
		}
	}
	if files := torrentFiles(t, f.boot); !slices.Equal(files, []string{"r01n01/" + newer + ".torrent"}) {
		t.Fatalf(".torrents after EndSeeding: %v, want the newer run's only", files)
	}
	if _, ok := seeder.Stats(exp.Digest); !ok {
		t.Error("EndSeeding stopped the worker's seeding (a newer export's)")
	}
	if _, err := f.boot.ExportDir("r01n01"); err != nil {
		t.Errorf("EndSeeding withdrew the export: %v", err)
	}
	if _, err := f.env.ExecuteActivity(f.acts.EndSeeding, []workflows.Torrent(nil)); err != nil {
		t.Errorf("EndSeeding of nothing: %v", err)
	}
}

// TestExportUnusableImage: a root whose image file is missing, empty or
// unreadable fails Export with a non-retryable ImageUnusable, with or
// without the swarm; no root at all too.
func TestExportUnusableImage(t *testing.T) {
	for _, tc := range []struct {
		name  string
		spoil func(t *testing.T, file string)
		swarm bool
	}{
		{"missing", func(t *testing.T, file string) { must(t, os.Remove(file)) }, false},
		{"missing, swarm", func(t *testing.T, file string) { must(t, os.Remove(file)) }, true},
		{"empty", func(t *testing.T, file string) { must(t, os.Truncate(file, 0)) }, true},
		{"directory", func(t *testing.T, file string) { must(t, os.Remove(file)); must(t, os.Mkdir(file, 0o755)) }, true},
		{"no root", nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, "right")
			if tc.swarm {
				seeder, err := swarm.NewSeeder(swarm.SeederConfig{ListenAddr: "127.0.0.1:0"})
				if err != nil {
					t.Fatal(err)
				}
				defer seeder.Close()
				f.acts.Swarm = seeder
			}
			if tc.spoil != nil {
				if _, err := f.env.ExecuteActivity(f.acts.Clone, workflows.CloneInput{Node: "r01n01", Image: "demo", Version: "v1"}); err != nil {
					t.Fatal(err)
				}
				root, err := f.images.Root(t.Context(), "r01n01")
				if err != nil {
					t.Fatal(err)
				}
				tc.spoil(t, root.File)
			}
			_, err := f.env.ExecuteActivity(f.acts.Export, "r01n01")
			wantType(t, err, workflows.ErrImageUnusable)
		})
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
