// Package activities implements rackflow's activities: the side effects of the
// workflows (inventory look-ups, image clones and exports, boot profiles, BMC
// power control). Every activity is idempotent, takes a context and returns
// non-retryable ApplicationErrors (types in package workflows) for errors that
// retrying cannot fix. Backends sit behind the small interfaces below; their
// production and dev implementations live in the subpackages.
package activities

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/anacrolix/torrent/metainfo"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/rackflow/rackflow/activities/bmc"
	"github.com/rackflow/rackflow/activities/imagestore"
	"github.com/rackflow/rackflow/activities/inventory"
	"github.com/rackflow/rackflow/netboot"
	"github.com/rackflow/rackflow/netboot/swarm"
	"github.com/rackflow/rackflow/workflows"
)

// ImageStore holds golden images and the per-node roots cloned from them.
type ImageStore interface {
	Backend() string
	Clone(ctx context.Context, node, image, version string) (imagestore.Root, error)
	Root(ctx context.Context, node string) (imagestore.Root, error)
	DestroyRoot(ctx context.Context, node string) error
}

// BootStore is where boot profiles and exports are published for the
// netboot service.
type BootStore interface {
	Put(p netboot.Profile) error
	PutRackProfile(rack string, p netboot.Profile) error
	DeleteRackProfile(rack string) error
	Export(node, dir string) error
	Unexport(node string) error // also removes the .torrents of all the node's runs
	// PutTorrent publishes the .torrent of node's export by workflow run
	// run at netboot.TorrentPath(node, run); DeleteTorrent withdraws it
	// (a missing one is fine). Bad names are errors wrapping
	// netboot.ErrInvalidName.
	PutTorrent(node, run string, data []byte) error
	DeleteTorrent(node, run string) error
}

// Swarm seeds exported images over BitTorrent (implemented by
// *swarm.Seeder): Seed registers path as key's copy of the image of digest
// and returns its .torrent with webSeed as url-list (errors wrap
// swarm.ErrImage for an unusable file); Stop withdraws key.
type Swarm interface {
	Seed(ctx context.Context, key, path, digest, webSeed string) (*metainfo.MetaInfo, error)
	Stop(key string)
}

// BMC is an open session with one node's baseboard management controller.
type BMC interface {
	PowerOn(ctx context.Context) error
	PowerOff(ctx context.Context) error
	PowerCycle(ctx context.Context) error
	SetBootDevice(ctx context.Context, device string, persistent bool) error
	Close(ctx context.Context) error
}

// DialBMC opens a BMC session. The errors bmc.ErrAuth and bmc.ErrDriver
// (wrapped) mean retrying cannot help.
type DialBMC func(ctx context.Context, cfg bmc.Config) (BMC, error)

// DialBMCLib opens BMCs through bmclib (package bmc).
func DialBMCLib(log *slog.Logger) DialBMC {
	return func(ctx context.Context, cfg bmc.Config) (BMC, error) {
		c, err := bmc.Open(ctx, cfg, log)
		if err != nil {
			return nil, err
		}
		return c, nil
	}
}

// PermitRequester delivers a permit request to a rack's limiter workflow,
// starting it if it is not running (implemented by starter.Client).
type PermitRequester interface {
	RequestPermit(ctx context.Context, rack string, req workflows.PermitRequest) error
}

// Activities holds the dependencies of the activities of one rack (or, for
// LookupNode, of the whole inventory). Methods are registered under the
// workflows.Activity* names.
type Activities struct {
	Inventory *inventory.Inventory
	// Current, when set, returns the inventory as reloaded from its file
	// (inventory.Reloading.Current), so nodes added by rackflow enrol or
	// recorded by USB identify are found without a restart; nil →
	// Inventory.
	Current func() *inventory.Inventory
	Permits PermitRequester
	Images  ImageStore
	Boot    BootStore
	DialBMC DialBMC
	// Ownership is the ownership directory CheckOwner and ClearOwner ask;
	// nil when the worker has none (they then fail OwnershipNotConfigured).
	Ownership Ownership
	// HTTPBase is the netboot HTTP URL nodes reach, e.g. "http://10.0.0.1:8880".
	HTTPBase string
	// CheckInKey signs the per-provision check-in tokens (HMAC-SHA256).
	CheckInKey []byte
	// Swarm, when set, seeds every export over BitTorrent and boot
	// profiles send agents through it (the swarm transport); nil → agents
	// download over plain HTTP.
	Swarm Swarm
	// SeedFor is how long agents keep seeding after checking in, and
	// NodeUploadRate what each sends to peers at most in bytes/s (0:
	// unlimited) (swarm transport).
	SeedFor        time.Duration
	NodeUploadRate int64
	// Kernel and Initrd name the installer's artifacts under /artifacts/;
	// KernelArgs are extra kernel command-line words (e.g. console=ttyS0).
	Kernel, Initrd string
	KernelArgs     []string
	Log            *slog.Logger
}

// inv is the inventory an activity works with (one snapshot per call).
func (a *Activities) inv() *inventory.Inventory {
	if a.Current != nil {
		return a.Current()
	}
	return a.Inventory
}

// LookupNode returns what the inventory says of node.
func (a *Activities) LookupNode(ctx context.Context, node string) (workflows.NodeInfo, error) {
	inv := a.inv()
	n, err := nodeOf(inv, node)
	if err != nil {
		return workflows.NodeInfo{}, err
	}
	r, _ := inv.Rack(n.Rack)
	return workflows.NodeInfo{Name: n.Name, Rack: n.Rack, Slot: n.Slot, MACs: n.MACs, IP: n.IP, Limits: rackLimits(r), DrainURL: r.DrainURL}, nil
}

// ResolveNodes resolves a rollout selector to nodes per rack, racks in
// inventory order and nodes in slot order; unknown racks or nodes are a
// non-retryable error naming them.
func (a *Activities) ResolveNodes(ctx context.Context, s workflows.Selector) ([]workflows.RackNodes, error) {
	inv := a.inv()
	want := map[string]bool{}
	for _, r := range s.Racks {
		if _, ok := inv.Rack(r); !ok {
			return nil, temporal.NewNonRetryableApplicationError(fmt.Sprintf("unknown rack %q in %s", r, inv.File()), workflows.ErrUnknownRack, nil)
		}
	}
	for _, n := range s.Nodes {
		if _, err := nodeOf(inv, n); err != nil {
			return nil, err
		}
		want[n] = true
	}
	var out []workflows.RackNodes
	for _, r := range inv.Racks {
		whole := slices.Contains(s.Racks, r.Name)
		var nodes []inventory.Node
		for _, n := range inv.Nodes {
			if n.Rack == r.Name && (whole || want[n.Name]) {
				nodes = append(nodes, n)
			}
		}
		if len(nodes) == 0 {
			continue
		}
		slices.SortStableFunc(nodes, func(x, y inventory.Node) int { return x.Slot - y.Slot })
		g := workflows.RackNodes{Rack: r.Name, Limits: rackLimits(r)}
		for _, n := range nodes {
			g.Nodes = append(g.Nodes, n.Name)
		}
		out = append(out, g)
	}
	return out, nil
}

func rackLimits(r inventory.Rack) workflows.RackLimits {
	return workflows.RackLimits{
		Clones: r.Limits.Clones, PowerOns: r.Limits.PowerOns, InFlight: r.Limits.InFlight,
		PowerOnInterval: time.Duration(r.Limits.PowerOnInterval),
		PermitLease:     time.Duration(r.Limits.PermitLease),
	}
}

// RequestPermit asks rack's limiter for a permit (signal-with-start).
func (a *Activities) RequestPermit(ctx context.Context, rack string, req workflows.PermitRequest) error {
	if err := a.Permits.RequestPermit(ctx, rack, req); err != nil {
		return fmt.Errorf("permit request to rack %s: %w", rack, err)
	}
	return nil
}

func (a *Activities) node(name string) (inventory.Node, error) { return nodeOf(a.inv(), name) }

// nodeOf looks name up in inv; an unknown node is a non-retryable
// UnknownNode error.
func nodeOf(inv *inventory.Inventory, name string) (inventory.Node, error) {
	n, err := inv.Node(name)
	if err != nil {
		return n, temporal.NewNonRetryableApplicationError(err.Error(), workflows.ErrUnknownNode, err)
	}
	return n, nil
}

// Clone creates node's writable root from image@version (idempotent: an
// existing root of the same version is returned; one of another version is
// replaced when in.Replace, else a RootConflict). It heartbeats while the
// backend works.
func (a *Activities) Clone(ctx context.Context, in workflows.CloneInput) (workflows.Root, error) {
	var root imagestore.Root
	err := withHeartbeat(ctx, func() error {
		var err error
		root, err = a.Images.Clone(ctx, in.Node, in.Image, in.Version)
		if in.Replace && errors.Is(err, imagestore.ErrRootConflict) {
			a.Log.Warn("replacing the root of another version", "node", in.Node, "image", in.Image, "version", in.Version)
			if err := a.Images.DestroyRoot(ctx, in.Node); err != nil {
				return err
			}
			root, err = a.Images.Clone(ctx, in.Node, in.Image, in.Version)
		}
		return err
	})
	if err != nil {
		return workflows.Root{}, imageError("clone", err)
	}
	a.Log.Info("root ready", "node", in.Node, "image", in.Image, "version", in.Version, "backend", a.Images.Backend())
	return workflows.Root{Node: root.Node, Image: root.Image, Version: root.Version, Digest: root.Digest, Size: root.Size}, nil
}

// DestroyRoot removes node's root (idempotent).
func (a *Activities) DestroyRoot(ctx context.Context, node string) error {
	if err := a.Images.DestroyRoot(ctx, node); err != nil {
		return imageError("destroy root", err)
	}
	return nil
}

// Export publishes node's root at the netboot HTTP service and returns the
// URL of its image file; with a Swarm it also seeds the image (hashing it
// into pieces the first time its digest is seen, heartbeating meanwhile)
// and publishes the .torrent at /torrents/<node>/<run>.torrent, run being
// the workflow run that calls Export: a retry rewrites the same file, a
// later run of the node writes another, so ending this run's seeding
// (EndSeeding) never withdraws a newer export's. A missing, empty or
// unreadable image file is a non-retryable ImageUnusable error.
func (a *Activities) Export(ctx context.Context, node string) (workflows.ExportResult, error) {
	root, err := a.Images.Root(ctx, node)
	if err != nil {
		return workflows.ExportResult{}, imageError("export", err)
	}
	if err := checkImage(root.File); err != nil {
		return workflows.ExportResult{}, imageError("export "+node, err)
	}
	if err := a.Boot.Export(node, root.Dir); err != nil {
		return workflows.ExportResult{}, fmt.Errorf("export %s: %w", node, err)
	}
	res := workflows.ExportResult{URL: a.exportURL(root), Digest: root.Digest}
	if a.Swarm == nil {
		return res, nil
	}
	var mi *metainfo.MetaInfo
	err = withHeartbeat(ctx, func() error {
		var err error
		mi, err = a.Swarm.Seed(ctx, node, root.File, root.Digest, res.URL)
		return err
	})
	if err != nil {
		return workflows.ExportResult{}, imageError("seed "+node, err)
	}
	data, err := swarm.Encode(mi)
	if err != nil {
		return workflows.ExportResult{}, fmt.Errorf("export %s: %w", node, err)
	}
	run := activity.GetInfo(ctx).WorkflowExecution.RunID
	if err := a.Boot.PutTorrent(node, run, data); err != nil {
		return workflows.ExportResult{}, fmt.Errorf("export %s: %w", node, err)
	}
	res.TorrentURL = a.HTTPBase + netboot.TorrentPath(node, run)
	res.InfoHash = mi.HashInfoBytes().HexString()
	return res, nil
}

// checkImage opens the image file for reading; errors wrap swarm.ErrImage.
func checkImage(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("%w: %w", swarm.ErrImage, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	switch {
	case err != nil:
		return fmt.Errorf("%w: %w", swarm.ErrImage, err)
	case !fi.Mode().IsRegular():
		return fmt.Errorf("%w: %s is not a regular file", swarm.ErrImage, path)
	case fi.Size() == 0:
		return fmt.Errorf("%w: %s is empty", swarm.ErrImage, path)
	}
	if _, err := f.Read(make([]byte, 1)); err != nil {
		return fmt.Errorf("%w: %s: %w", swarm.ErrImage, path, err)
	}
	return nil
}

func (a *Activities) exportURL(root imagestore.Root) string {
	return a.HTTPBase + "/exports/" + root.Node + "/" + filepath.Base(root.File)
}

// Unexport withdraws node's export and the .torrents of all its runs, and
// stops seeding its copy (idempotent).
func (a *Activities) Unexport(ctx context.Context, node string) error {
	if a.Swarm != nil {
		a.Swarm.Stop(node)
	}
	if err := a.Boot.Unexport(node); err != nil {
		return fmt.Errorf("unexport %s: %w", node, err)
	}
	return nil
}

// EndSeeding tells the agents of the exports in torrents that the rollout
// no longer needs them to seed (HaDeS: nodes seed while the rollout is in
// progress): it withdraws exactly those runs' .torrents, and the agents,
// which check theirs while they seed (swarm.KeepSeeding), stop within a
// poll interval instead of at their SeedFor limit. A newer export of the
// same node has its own run's .torrent and is untouched; so are the
// exports and this worker's seeding (Unexport stops that). Idempotent; an
// invalid node or run name is a non-retryable InvalidName error before
// anything is withdrawn.
func (a *Activities) EndSeeding(ctx context.Context, torrents []workflows.Torrent) error {
	for _, t := range torrents {
		if err := errors.Join(netboot.ValidName(t.Node), netboot.ValidRun(t.Run)); err != nil {
			return temporal.NewNonRetryableApplicationError(fmt.Sprintf("end seeding: %v", err), workflows.ErrInvalidName, err)
		}
	}
	for _, t := range torrents {
		if err := a.Boot.DeleteTorrent(t.Node, t.Run); err != nil {
			return fmt.Errorf("end seeding of %s (run %s): %w", t.Node, t.Run, err)
		}
	}
	a.Log.Info("seeding ended", "exports", len(torrents))
	return nil
}

// SetBoot writes the boot profile of every MAC of the node, atomically per
// MAC. An install profile carries the agent's arguments with a check-in token
// bound to (node, run); an identify profile the agent's identify arguments
// (netboot.IdentifyArgs: identify URL, scope, and a token bound to the
// scope). An invalid scope or an unknown mode is a non-retryable
// InvalidName error.
func (a *Activities) SetBoot(ctx context.Context, in workflows.SetBootInput) error {
	n, err := a.node(in.Node)
	if err != nil {
		return err
	}
	p := netboot.Profile{Node: n.Name, Rack: n.Rack, Mode: netboot.ModeLocal}
	switch in.Mode {
	case workflows.BootLocal:
	case workflows.BootIdentify:
		id, err := a.identifyProfile(in.Scope)
		if err != nil {
			return temporal.NewNonRetryableApplicationError(fmt.Sprintf("identify boot profile of %s: %v", n.Name, err), workflows.ErrInvalidName, err)
		}
		p.Mode, p.Kernel, p.Initrd, p.Args = id.Mode, id.Kernel, id.Initrd, id.Args
	case workflows.BootInstall:
		p.Mode, p.Kernel, p.Initrd = netboot.ModeInstall, a.Kernel, a.Initrd
		p.Args = append(append([]string{}, a.KernelArgs...), netboot.AgentArgs{
			Node:       n.Name,
			CheckInURL: a.HTTPBase + "/v1/checkin",
			Run:        in.Run,
			Token:      netboot.MintToken(a.CheckInKey, n.Name, in.Run),
			ImageURL:   in.ImageURL,
			Digest:     in.Digest,
			TorrentURL: in.TorrentURL,
			InfoHash:   in.InfoHash,
			SeedFor:    a.SeedFor,
			UploadRate: a.NodeUploadRate,
		}.Encode()...)
	default:
		return temporal.NewNonRetryableApplicationError(fmt.Sprintf("boot profile of %s: unknown mode %q", n.Name, in.Mode), workflows.ErrInvalidName, nil)
	}
	for _, mac := range n.MACs {
		p.MAC = mac
		if err := a.Boot.Put(p); err != nil {
			return fmt.Errorf("boot profile of %s (%s): %w", n.Name, mac, err)
		}
	}
	return nil
}

// PowerCycle sets the node's one-time boot device (PXE, or disk) and
// power-cycles it: through the BMC's cycle, or power off then on when Hard.
func (a *Activities) PowerCycle(ctx context.Context, in workflows.PowerCycleInput) error {
	device := "pxe"
	if in.Disk {
		device = "disk"
	}
	return a.withBMC(ctx, in.Node, func(n inventory.Node, b BMC) error {
		if err := b.SetBootDevice(ctx, device, false); err != nil {
			return fmt.Errorf("boot device %s: %w", device, err)
		}
		if in.Hard {
			if err := b.PowerOff(ctx); err != nil {
				return fmt.Errorf("power off: %w", err)
			}
			if err := b.PowerOn(ctx); err != nil {
				return fmt.Errorf("power on: %w", err)
			}
		} else if err := b.PowerCycle(ctx); err != nil {
			return fmt.Errorf("power cycle: %w", err)
		}
		a.Log.Info("power-cycled", "node", n.Name, "rack", n.Rack, "boot_device", device, "hard", in.Hard)
		return nil
	})
}

// PowerOff removes the node's power through its BMC (idempotent: a node
// that is off is left alone).
func (a *Activities) PowerOff(ctx context.Context, node string) error {
	return a.withBMC(ctx, node, func(n inventory.Node, b BMC) error {
		if err := b.PowerOff(ctx); err != nil {
			return fmt.Errorf("power off: %w", err)
		}
		a.Log.Info("powered off", "node", n.Name, "rack", n.Rack)
		return nil
	})
}

// withBMC runs fn with a session on node's BMC, closed afterwards. Missing
// credentials and the errors bmcError maps are non-retryable.
func (a *Activities) withBMC(ctx context.Context, node string, fn func(inventory.Node, BMC) error) error {
	inv := a.inv()
	n, err := nodeOf(inv, node)
	if err != nil {
		return err
	}
	if !n.HasBMC() {
		msg := fmt.Sprintf("node %s has no BMC in %s (recorded by USB identify): add its bmc entry to the inventory", n.Name, inv.File())
		return temporal.NewNonRetryableApplicationError(msg, workflows.ErrBMCDriver, nil)
	}
	cred, err := inv.Credential(n)
	if err != nil {
		return temporal.NewNonRetryableApplicationError(err.Error(), workflows.ErrBMCAuth, err)
	}
	b, err := a.DialBMC(ctx, bmc.Config{Driver: n.BMC.Driver, Address: n.BMC.Address, Username: cred.Username, Password: cred.Password})
	if err != nil {
		return bmcError(n.Name, err)
	}
	defer func() {
		if err := b.Close(context.WithoutCancel(ctx)); err != nil {
			a.Log.Warn("closing BMC session", "node", n.Name, "error", err)
		}
	}()
	if err := fn(n, b); err != nil {
		return bmcError(n.Name, err)
	}
	return nil
}

func bmcError(node string, err error) error {
	msg := fmt.Sprintf("BMC of %s: %v", node, err)
	switch {
	case errors.Is(err, bmc.ErrAuth):
		return temporal.NewNonRetryableApplicationError(msg, workflows.ErrBMCAuth, err)
	case errors.Is(err, bmc.ErrDriver):
		return temporal.NewNonRetryableApplicationError(msg, workflows.ErrBMCDriver, err)
	}
	return fmt.Errorf("BMC of %s: %w", node, err)
}

// imageError maps image-store errors retrying cannot fix to typed
// non-retryable ApplicationErrors.
func imageError(op string, err error) error {
	for _, m := range []struct {
		err error
		typ string
	}{
		{imagestore.ErrUnknownImage, workflows.ErrUnknownImage},
		{imagestore.ErrUnknownVersion, workflows.ErrUnknownVersion},
		{imagestore.ErrInvalidName, workflows.ErrInvalidName},
		{imagestore.ErrRootConflict, workflows.ErrRootConflict},
		{imagestore.ErrNoRoot, workflows.ErrImageUnusable},
		{swarm.ErrImage, workflows.ErrImageUnusable},
	} {
		if errors.Is(err, m.err) {
			msg := op + ": " + err.Error()
			if m.typ == workflows.ErrRootConflict {
				msg += " (provision with --replace to replace it)"
			}
			return temporal.NewNonRetryableApplicationError(msg, m.typ, err)
		}
	}
	return fmt.Errorf("%s: %w", op, err)
}

// heartbeatEvery is how often long activities report liveness.
const heartbeatEvery = 10 * time.Second

// withHeartbeat runs fn, heartbeating until it returns.
func withHeartbeat(ctx context.Context, fn func() error) error {
	done := make(chan error, 1)
	go func() { done <- fn() }()
	t := time.NewTicker(heartbeatEvery)
	defer t.Stop()
	for {
		select {
		case err := <-done:
			return err
		case <-t.C:
			activity.RecordHeartbeat(ctx)
		}
	}
}
