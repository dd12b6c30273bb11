// Package dev runs rackflow's embedded default on one machine: an embedded
// Temporal server and Web UI, the worker, the netboot service, a demo golden
// image and a virtual rack of Redfish-managed virtual nodes, everything on
// loopback. `rackflow dev` and the integration tests use it; production
// packages never import it.
package dev

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"time"

	"go.temporal.io/sdk/interceptor"
	"go.temporal.io/sdk/worker"

	"github.com/rackflow/rackflow/activities"
	"github.com/rackflow/rackflow/activities/imagestore"
	"github.com/rackflow/rackflow/activities/inventory"
	"github.com/rackflow/rackflow/activities/ownership"
	devldap "github.com/rackflow/rackflow/dev/ldap"
	"github.com/rackflow/rackflow/dev/qemurig"
	devtemporal "github.com/rackflow/rackflow/dev/temporal"
	"github.com/rackflow/rackflow/dev/vrack"
	"github.com/rackflow/rackflow/dev/zfsfuse"
	"github.com/rackflow/rackflow/netboot"
	"github.com/rackflow/rackflow/netboot/swarm"
	"github.com/rackflow/rackflow/starter"
	"github.com/rackflow/rackflow/workers"
	"github.com/rackflow/rackflow/workflows"
)

// Options configure the embedded default. Zero values take the defaults
// noted on each field.
type Options struct {
	StateDir  string // default ./.rackflow
	Inventory string // "" → generate <StateDir>/inventory.yaml for a virtual rack
	Racks     int    // virtual racks, default 1
	Nodes     int    // virtual nodes per rack, default 8

	FrontendAddr string // default 127.0.0.1:7233; port 0 picks one
	UIAddr       string // Web UI; "" runs none
	InMemory     bool   // keep Temporal's database in memory (tests)
	DHCPAddr     string // default 127.0.0.1:6767
	TFTPAddr     string // default 127.0.0.1:6969
	HTTPAddr     string // default 127.0.0.1:8880
	BMCPort      int    // port of every virtual BMC on its own loopback address, default 8443

	// Rig is RigVirtual (default) or RigQEMU: QEMU machines that PXE-boot
	// through iPXE, with ipmi_sim BMCs, in a network namespace (root; one
	// rack; the netboot service listens inside the namespace, on
	// qemurig.ServerIP, ports 67, 69 and 8880).
	Rig string
	// Agent is the static rackflow-agent binary put into the QEMU rig's
	// initramfs; default: rackflow-agent beside the running executable.
	Agent string
	// RigFirmware is the QEMU rig's firmware: qemurig.FirmwareBIOS
	// (default), FirmwareUEFI or FirmwareMixed.
	RigFirmware string
	// RigBMCPasswords sets QEMU rig BMC passwords that differ from the
	// inventory's (tests).
	RigBMCPasswords map[string]string
	// LDAP starts a throwaway slapd (HOP-SCOTCH's ownership rules as ACLs)
	// with a server entry per inventory node and users admin, alice, bob,
	// carol (passwords in <state>/ldap/<uid>.pw).
	LDAP bool
	// CacheDir keeps the QEMU rig's Debian kernel between runs; default
	// <user cache dir>/rackflow (<temp dir>/rackflow without a home).
	CacheDir string

	// ImageTransport is how nodes download images: TransportSwarm
	// (default: BitTorrent with the netboot HTTP export as web seed,
	// package netboot/swarm) or TransportHTTP (plain HTTP only).
	ImageTransport string
	// SeedFor is how long agents keep seeding after checking in (swarm),
	// default 10 minutes; SwarmUploadRate and NodeUploadRate cap what the
	// seeder and each node send to peers, bytes/s (0: unlimited).
	SeedFor                         time.Duration
	SwarmUploadRate, NodeUploadRate int64

	ImageSize      int64         // bytes of each demo image version, default 4 MiB
	Store          string        // "zfs", "dir" or "" (zfs when zfs-fuse or ZFS is usable)
	CheckInTimeout time.Duration // per boot, default workflows.DefaultCheckInTimeout

	// Faults makes the named virtual nodes misbehave (tests).
	Faults map[string]vrack.Fault
	// Interceptors wrap the workers' workflows and activities (tests).
	Interceptors []interceptor.WorkerInterceptor

	Log *slog.Logger // default discards
}

func (o *Options) defaults() {
	def := func(s *string, v string) {
		if *s == "" {
			*s = v
		}
	}
	def(&o.StateDir, ".rackflow")
	def(&o.FrontendAddr, devtemporal.DefaultFrontendAddr)
	def(&o.DHCPAddr, "127.0.0.1:6767")
	def(&o.TFTPAddr, "127.0.0.1:6969")
	def(&o.HTTPAddr, "127.0.0.1:8880")
	if o.Racks == 0 {
		o.Racks = 1
	}
	if o.Nodes == 0 {
		o.Nodes = 8
	}
	if o.BMCPort == 0 {
		o.BMCPort = 8443
	}
	if o.ImageSize == 0 {
		o.ImageSize = 4 << 20
	}
	def(&o.ImageTransport, TransportSwarm)
	if o.SeedFor == 0 {
		o.SeedFor = 10 * time.Minute
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
}

// Env is a running embedded default. Close stops it.
type Env struct {
	Inventory *inventory.Inventory
	Images    imagestore.Store
	Client    *starter.Client
	Temporal  *devtemporal.Server
	Netboot   *netboot.Service
	Rack      *vrack.Rack     // the virtual rack (RigVirtual)
	QEMU      *qemurig.Rig    // the QEMU rig (RigQEMU)
	LDAP      *devldap.Server // the throwaway directory (Options.LDAP)
	Seeder    *swarm.Seeder   // seeds every export (TransportSwarm)
	Tracker   *swarm.Tracker  // served by the netboot service at /announce

	opts        Options
	recorder    *qemurig.Recorder // boot events of the QEMU rig's nodes
	ldapUsers   map[string]string // user DN → password file
	workers     *workers.Set
	closeImages func() error
	cancel      context.CancelFunc
	done        chan error
}

// Start brings up every service of the embedded default. On error
// everything already started is stopped.
func Start(ctx context.Context, o Options) (env *Env, err error) {
	o.defaults()
	log := o.Log
	var rec *qemurig.Recorder
	if o.Rig == RigQEMU {
		rec = qemurig.NewRecorder(log.Handler())
		log = slog.New(rec)
	}
	if err := os.MkdirAll(o.StateDir, 0o755); err != nil {
		return nil, fmt.Errorf("state dir: %w", err)
	}
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	env = &Env{opts: o, cancel: cancel, done: make(chan error, 1), recorder: rec}
	defer func() {
		if err != nil {
			env.Close()
			env = nil
		}
	}()

	if err := o.checkRig(); err != nil {
		return env, err
	}
	if o.ImageTransport != TransportSwarm && o.ImageTransport != TransportHTTP {
		return env, fmt.Errorf("image transport %q: want %q or %q", o.ImageTransport, TransportSwarm, TransportHTTP)
	}
	var generated *inventory.Inventory
	if o.Rig == RigQEMU {
		if env.QEMU, err = qemurig.Start(ctx, qemurig.Config{
			Dir: filepath.Join(o.StateDir, "rig"), Nodes: o.Nodes, Firmware: o.RigFirmware, BMCPasswords: o.RigBMCPasswords, Log: log,
		}); err != nil {
			return env, err
		}
		if generated, err = env.QEMU.Inventory(); err != nil {
			return env, err
		}
	} else if generated, err = inventory.GenerateVirtual(o.Racks, o.Nodes, "127.0.0.1", o.BMCPort); err != nil {
		return env, err
	}
	if env.Inventory, err = loadInventory(o, generated, log); err != nil {
		return env, err
	}
	if o.LDAP {
		if err := env.startLDAP(ctx); err != nil {
			return env, err
		}
	}
	key, err := checkInKey(filepath.Join(o.StateDir, "checkin.key"))
	if err != nil {
		return env, err
	}
	store := o.Store
	if store == "" && len(env.Inventory.Nodes) > zfsFuseMaxRoots {
		store = "dir"
		log.Warn("image store: dir, not zfs-fuse: zfs-fuse stalled in `zfs clone` past ~280 mounted clones on this machine kind",
			"nodes", len(env.Inventory.Nodes), "zfs_fuse_max_roots", zfsFuseMaxRoots)
	}
	if env.Images, env.closeImages, err = OpenImageStore(ctx, o.StateDir, store, log); err != nil {
		return env, err
	}
	if err := seedDemoImage(ctx, env.Images, o.ImageSize, log); err != nil {
		return env, err
	}
	tftpRoot, artifacts, err := netbootFiles(o.StateDir)
	if err != nil {
		return env, err
	}
	if env.QEMU != nil {
		if err := nodeEnvironment(ctx, o, artifacts, log); err != nil {
			return env, err
		}
	}

	tcfg := devtemporal.Config{
		StateDir:         filepath.Join(o.StateDir, "temporal"),
		FrontendAddr:     o.FrontendAddr,
		UIAddr:           o.UIAddr,
		SearchAttributes: workflows.SearchAttributes(),
		Logger:           log,
	}
	if o.InMemory {
		tcfg.StateDir = ""
	}
	if env.Temporal, err = devtemporal.Start(ctx, tcfg); err != nil {
		return env, err
	}
	if env.Client, err = starter.Dial(ctx, env.Temporal.FrontendAddr(), env.Temporal.Namespace(), log); err != nil {
		return env, err
	}

	subnets, err := env.Inventory.Subnets()
	if err != nil {
		return env, err
	}
	reloading := inventory.NewReloading(env.Inventory, log) // nodes added by enrol or identify
	nbc := netboot.Config{
		Subnets: subnets, DHCPStateDir: filepath.Join(o.StateDir, "dhcp"),
		DHCPAddr: o.DHCPAddr, TFTPAddr: o.TFTPAddr, HTTPAddr: o.HTTPAddr, ServerIP: "127.0.0.1",
		TFTPRoot: tftpRoot, ArtifactsDir: artifacts, StoreDir: filepath.Join(o.StateDir, "netboot"),
		CheckInKey: key, Reservations: reloading, Signaler: env.Client, Identifier: env.Client, Logger: log,
	}
	env.Tracker = swarm.NewTracker(0)
	nbc.Tracker = env.Tracker
	if env.QEMU != nil {
		nbc.ServerIP = qemurig.ServerIP
		nbc.DHCPAddr = "0.0.0.0:67"
		nbc.TFTPAddr = net.JoinHostPort(qemurig.ServerIP, "69")
		nbc.HTTPAddr = net.JoinHostPort(qemurig.ServerIP, "8880")
		nbc.RAInterface = qemurig.Bridge
		nbc.TFTPSinglePort = true
	}
	if env.Netboot, err = netboot.New(nbc); err != nil {
		return env, err
	}
	serveNetboot := func() { env.done <- env.Netboot.Run(runCtx) }
	if env.QEMU != nil {
		err = env.QEMU.InNamespace(serveNetboot)
	} else {
		go serveNetboot()
	}
	if err != nil {
		return env, err
	}
	select {
	case <-env.Netboot.Ready():
	case err := <-env.done:
		return env, fmt.Errorf("netboot: %w", err)
	}

	acts := &activities.Activities{
		Inventory: env.Inventory, Current: reloading.Current, Permits: env.Client, Images: env.Images, Boot: env.Netboot.Store(),
		DialBMC: activities.DialBMCLib(log), HTTPBase: env.Netboot.HTTPBase(), CheckInKey: key,
		Kernel: "vmlinuz", Initrd: "initrd.img", Log: log,
		SeedFor: o.SeedFor, NodeUploadRate: o.NodeUploadRate,
	}
	if o.ImageTransport == TransportSwarm {
		if err := env.startSeeder(log); err != nil {
			return env, err
		}
		acts.Swarm = env.Seeder
	}
	if env.QEMU != nil {
		acts.KernelArgs = []string{"console=ttyS0"}
	}
	if env.LDAP != nil {
		// The workflows' ownership checks bind as the directory's admin,
		// the worker's service account in dev.
		acts.Ownership = activities.LDAPOwnership{Config: ownership.Config{
			URL: env.LDAP.URL, BaseDN: env.LDAP.BaseDN, BindDN: env.LDAP.AdminDN, Password: env.LDAP.AdminPassword,
		}}
	}
	tc := env.Client.Temporal()
	wo := workers.Options{Interceptors: o.Interceptors}
	ws := []worker.Worker{workers.Global(tc, acts, wo)}
	for _, rack := range env.Inventory.RackNames() {
		ws = append(ws, workers.Rack(tc, rack, acts, wo))
	}
	if env.workers, err = workers.Start(ws...); err != nil {
		return env, err
	}

	if env.QEMU != nil {
		return env, nil
	}
	specs, err := virtualNodes(env.Inventory, o.Faults)
	if err != nil {
		return env, err
	}
	env.Rack, err = vrack.Start(runCtx, vrack.Config{DHCPServer: env.Netboot.DHCPAddr(), TFTPServer: env.Netboot.TFTPAddr(),
		USBDir: usbDir(o.StateDir), Logger: log}, specs)
	if err != nil {
		return env, fmt.Errorf("virtual rack: %w", err)
	}
	return env, nil
}

// Close stops everything Start started, in reverse order.
func (e *Env) Close() {
	if e.Rack != nil {
		_ = e.Rack.Close()
	}
	if e.LDAP != nil {
		if err := e.LDAP.Close(); err != nil {
			e.opts.Log.Warn("stopping slapd", "error", err)
		}
	}
	if e.QEMU != nil {
		if err := e.QEMU.Close(); err != nil {
			e.opts.Log.Warn("stopping the qemu rig", "error", err)
		}
	}
	if e.workers != nil {
		e.workers.Stop()
	}
	if e.Seeder != nil {
		if err := e.Seeder.Close(); err != nil {
			e.opts.Log.Warn("stopping the swarm seeder", "error", err)
		}
	}
	if e.Netboot != nil {
		e.cancel()
		<-e.done
	}
	e.cancel()
	if e.Client != nil {
		e.Client.Close()
	}
	if e.Temporal != nil {
		if err := e.Temporal.Stop(); err != nil {
			e.opts.Log.Warn("stopping temporal", "error", err)
		}
	}
	if e.closeImages != nil {
		if err := e.closeImages(); err != nil {
			e.opts.Log.Warn("closing the image store", "error", err)
		}
	}
}

// Image transports (Options.ImageTransport).
const (
	TransportSwarm = "swarm"
	TransportHTTP  = "http"
)

// startSeeder starts the swarm seeder beside the netboot service: on
// 127.0.0.1, or for the QEMU rig on qemurig.ServerIP inside its namespace
// (listener bound there, tracker dialled from there).
func (e *Env) startSeeder(log *slog.Logger) error {
	cfg := swarm.SeederConfig{ListenAddr: "127.0.0.1:0", Announce: e.Netboot.HTTPBase() + "/announce",
		UploadRate: e.opts.SwarmUploadRate, Logger: log}
	var err error
	if e.QEMU == nil {
		e.Seeder, err = swarm.NewSeeder(cfg)
		return err
	}
	cfg.ListenAddr, cfg.Dial = net.JoinHostPort(qemurig.ServerIP, "0"), e.QEMU.DialContext
	done := make(chan struct{})
	if err := e.QEMU.InNamespace(func() {
		defer close(done)
		e.Seeder, err = swarm.NewSeeder(cfg)
	}); err != nil {
		return err
	}
	<-done
	return err
}

// loadInventory loads o.Inventory, or else writes generated to
// <state>/inventory.yaml (when it changed) and loads that.
func loadInventory(o Options, generated *inventory.Inventory, log *slog.Logger) (*inventory.Inventory, error) {
	if o.Inventory != "" {
		return inventory.Load(o.Inventory)
	}
	path := filepath.Join(o.StateDir, "inventory.yaml")
	data, err := generated.Marshal()
	if err != nil {
		return nil, err
	}
	if old, err := os.ReadFile(path); err == nil && string(old) == string(data) {
		return inventory.Load(path)
	}
	log.Info("writing the rig's inventory", "path", path, "rig", o.Rig, "racks", o.Racks, "nodes_per_rack", o.Nodes)
	if err := writeFileAtomic(path, data, 0o644); err != nil {
		return nil, err
	}
	return inventory.Load(path)
}

// checkInKey reads the HMAC key of check-in tokens, creating a random one.
func checkInKey(path string) ([]byte, error) {
	key, err := os.ReadFile(path)
	if err == nil && len(key) >= netboot.MinCheckInKeyLen {
		return key, nil
	}
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("check-in key: %w", err)
	}
	key = make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, err
	}
	return key, writeFileAtomic(path, key, 0o600)
}

func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// OpenImageStore opens the dev image store in stateDir: backend "zfs" (a
// zfs-fuse pool on a file in the state dir), "dir", or "" for zfs when
// zfs-fuse is installed and dir otherwise. It logs which it chose. The
// returned close exports the zfs-fuse pool (a later open imports it again).
func OpenImageStore(ctx context.Context, stateDir, backend string, log *slog.Logger) (imagestore.Store, func() error, error) {
	if backend == "" {
		backend = "dir"
		if zfsfuse.Installed() {
			backend = "zfs"
		}
	}
	switch backend {
	case "zfs":
		pool, err := zfsfuse.Ensure(ctx, stateDir, poolName(stateDir), 2<<30, log)
		if err != nil {
			return nil, nil, fmt.Errorf("zfs-fuse pool: %w", err)
		}
		closePool := func() error { return pool.Export(context.Background()) }
		if err := pool.PrependPath(); err != nil {
			return nil, nil, errors.Join(err, closePool())
		}
		s, err := imagestore.NewZFS(pool.Name, log)
		if err != nil {
			return nil, nil, errors.Join(err, closePool())
		}
		log.Warn("image store: zfs", "pool", pool.Name, "via", "zfs-fuse")
		return s, closePool, nil
	case "dir":
		dir := filepath.Join(stateDir, "images")
		s, err := imagestore.NewDir(dir, log)
		if err != nil {
			return nil, nil, err
		}
		log.Warn("image store: dir", "path", dir)
		return s, func() error { return nil }, nil
	}
	return nil, nil, fmt.Errorf("image store %q: want zfs or dir", backend)
}

// zfsFuseMaxRoots is the most nodes `rackflow dev` gives zfs-fuse clones:
// a 1000-node run hung in `zfs clone` after 284 clones (zfs-fuse 0.7 on
// Debian 12). Production OpenZFS has no such limit.
const zfsFuseMaxRoots = 200

// poolName names the dev pool of a state dir: zfs-fuse's pools are
// machine-wide, so each state dir gets its own ("rackflow-<8 hex>").
func poolName(stateDir string) string {
	abs, err := filepath.Abs(stateDir)
	if err != nil {
		abs = stateDir
	}
	sum := sha256.Sum256([]byte(abs))
	return fmt.Sprintf("rackflow-%x", sum[:4])
}

// DemoImage is the golden image `rackflow dev` creates, with versions v1, v2.
const DemoImage = "demo"

// seedDemoImage creates the demo image's versions that are missing. Each is
// a raw disk image of size bytes: a label sector then deterministic
// pseudo-random content, so the versions differ and digests are stable.
func seedDemoImage(ctx context.Context, s imagestore.Store, size int64, log *slog.Logger) error {
	have := map[string]bool{}
	imgs, err := s.Images(ctx)
	if err != nil {
		return err
	}
	for _, img := range imgs {
		if img.Name == DemoImage {
			for _, v := range img.Versions {
				have[v.Name] = true
			}
		}
	}
	for i, v := range []string{"v1", "v2"} {
		if have[v] {
			continue
		}
		content := io.MultiReader(
			io.LimitReader(labelSector(fmt.Sprintf("rackflow demo image %s", v)), 512),
			io.LimitReader(newXorshift(uint64(i+1)), size-512))
		ver, err := s.CreateVersion(ctx, DemoImage, v, content)
		if err != nil {
			return fmt.Errorf("demo image %s: %w", v, err)
		}
		log.Info("demo image version created", "image", DemoImage, "version", v, "digest", ver.Digest, "bytes", ver.Size)
	}
	return nil
}

// LatestVersion is the most recently created version of image; versions
// created in the same instant (ZFS records whole seconds) go by name order.
func LatestVersion(ctx context.Context, s imagestore.Store, image string) (string, error) {
	imgs, err := s.Images(ctx)
	if err != nil {
		return "", err
	}
	for _, img := range imgs {
		if img.Name != image || len(img.Versions) == 0 {
			continue
		}
		latest := img.Versions[0]
		for _, v := range img.Versions[1:] {
			if !v.Created.Before(latest.Created) {
				latest = v
			}
		}
		return latest.Name, nil
	}
	return "", fmt.Errorf("image %q has no versions", image)
}

func virtualNodes(inv *inventory.Inventory, faults map[string]vrack.Fault) ([]vrack.NodeSpec, error) {
	specs := make([]vrack.NodeSpec, 0, len(inv.Nodes))
	for _, n := range inv.Nodes {
		cred, err := inv.Credential(n)
		if err != nil {
			return nil, err
		}
		mac, err := net.ParseMAC(n.MACs[0])
		if err != nil {
			return nil, err
		}
		specs = append(specs, vrack.NodeSpec{
			Name: n.Name, Rack: n.Rack, MAC: mac, BMCAddr: n.BMC.Address,
			Username: cred.Username, Password: cred.Password, Fault: faults[n.Name],
		})
	}
	return specs, nil
}
