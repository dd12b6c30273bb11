// Package qemurig is rackflow's QEMU rig: real machines for the provisioning
// path, none of whose parts rackflow wrote. Each node is a qemu-system-x86_64
// VM (TCG, virtio NIC with QEMU's iPXE ROM, a raw virtual disk, an xHCI USB
// controller, a serial console log and a QMP socket) whose BMC is an
// OpenIPMI ipmi_sim on its own loopback UDP port; bmclib's ipmitool provider
// drives it, and the BMC's chassis control starts and stops the VM
// (chassis.sh). Every VM's tap sits on a bridge inside a network namespace
// the rig creates, where the netboot service is bound (InNamespace), so all
// rig traffic stays in that namespace or on loopback.
//
// The rig needs root and the Debian packages listed in Packages; Missing says
// what is absent. Start locks the folder (a second rig there is refused)
// and removes what a previous run in it left behind (VMs, BMCs, the
// namespace), also after a crash; Close removes everything Start created.
package qemurig

import (
	"bytes"
	"context"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"text/template"
	"time"

	"github.com/rackflow/rackflow/activities/inventory"
)

// Addresses inside the rig's namespace: the bridge (where the netboot
// service listens) and the subnet the nodes get their addresses from.
const (
	ServerIP = "10.77.0.1"
	Subnet   = "10.77.0.0/24"
	Bridge   = "rfbr0" // the bridge of the VMs' taps
)

// BMC credentials of the rig's ipmi_sim BMCs (loopback only).
const (
	BMCUsername = "admin"
	BMCPassword = "rackflow-rig"
)

// MaxNodes is the most VMs one rig runs (one /24 for the nodes).
const MaxNodes = 200

// Packages are the Debian packages the rig uses (.ci/run installs them).
var Packages = []string{"qemu-system-x86", "ipxe-qemu", "ipxe", "ovmf", "openipmi", "ipmitool", "busybox-static", "kmod", "cpio", "iproute2"}

// tools are the commands the rig runs, by the package that provides them.
var tools = map[string]string{
	"qemu-system-x86_64": "qemu-system-x86", "ipmi_sim": "openipmi", "ipmitool": "ipmitool",
	"busybox": "busybox-static", "modprobe": "kmod", "depmod": "kmod", "cpio": "cpio", "ip": "iproute2",
	"apt-get": "apt", "apt-cache": "apt", "dpkg-deb": "dpkg",
}

// pxeROM is the virtio-net option ROM (iPXE) QEMU loads by default, from
// Debian's ipxe-qemu.
const pxeROM = "/usr/lib/ipxe/qemu/efi-virtio.rom"

var (
	//go:embed chassis.sh
	chassisScript []byte
	//go:embed bmc.emu
	bmcEmu []byte
	//go:embed lan.conf.tmpl
	lanConfText string
	lanConf     = template.Must(template.New("lan.conf").Parse(lanConfText))
)

// Missing lists what the rig needs and this machine lacks: root, each
// missing command with its Debian package, /dev/net/tun. Empty means the
// rig can run.
func Missing() []string {
	var out []string
	if os.Geteuid() != 0 {
		out = append(out, "root (network namespaces, taps)")
	}
	for _, t := range []string{"qemu-system-x86_64", "ipmi_sim", "ipmitool", "busybox", "modprobe", "depmod", "cpio", "ip", "apt-get", "apt-cache", "dpkg-deb"} {
		if _, err := exec.LookPath(t); err != nil {
			out = append(out, fmt.Sprintf("%s (Debian package %s)", t, tools[t]))
		}
	}
	for file, pkg := range map[string]string{pxeROM: "ipxe-qemu", ovmfCode: "ovmf", ovmfVars: "ovmf", "/usr/lib/ipxe/ipxe.efi": "ipxe"} {
		if _, err := os.Stat(file); err != nil {
			out = append(out, fmt.Sprintf("%s (Debian package %s)", file, pkg))
		}
	}
	if _, err := os.Stat("/dev/net/tun"); err != nil {
		out = append(out, "/dev/net/tun")
	}
	return out
}

// Config configures a rig. Zero values take the defaults noted.
type Config struct {
	Dir       string // rig folder: one folder per VM and BMC; required
	Nodes     int    // VMs, 1…MaxNodes; default 2
	Rack      string // rack name, default "r01"
	MemoryMiB int    // per VM, default 512
	// Firmware is FirmwareBIOS (default), FirmwareUEFI, or FirmwareMixed:
	// odd slots BIOS, even slots UEFI.
	Firmware  string
	DiskBytes int64 // raw virtual disk per VM, default 64 MiB
	BMCPort   int   // UDP port of the first BMC on 127.0.0.1, the next ones follow; 0 picks free ports
	// BMCPasswords sets a node's BMC password when it is not BMCPassword
	// (tests: a BMC whose password the inventory does not know).
	BMCPasswords map[string]string
	Log          *slog.Logger
}

// Firmwares of the rig's VMs.
const (
	// FirmwareBIOS is SeaBIOS with QEMU's iPXE NIC ROM: the firmware is
	// already iPXE, so DHCP hands it the HTTP script at once (no TFTP).
	FirmwareBIOS = "bios"
	// FirmwareUEFI is OVMF (EDK2) with its own virtio-net driver and PXE:
	// DHCP with option 93 = 7 → ipxe.efi over TFTP → iPXE → HTTP script.
	FirmwareUEFI  = "uefi"
	FirmwareMixed = "mixed"
)

// OVMF images (Debian package ovmf).
const (
	ovmfCode = "/usr/share/OVMF/OVMF_CODE_4M.fd"
	ovmfVars = "/usr/share/OVMF/OVMF_VARS_4M.fd"
)

// Node is one VM of the rig.
type Node struct {
	Name    string // r01n01…
	Rack    string
	Slot    int
	MAC     string // 52:54:00:52:00:01…
	IP      string // production address in Subnet
	BMCAddr string // "127.0.0.1:<port>" of its ipmi_sim
	Tap     string // its tap on the rig bridge
	// Firmware is FirmwareBIOS or FirmwareUEFI.
	Firmware string
	Dir      string // its folder: disk.raw, console.log, chassis.log, qemu.pid, bootdev
}

// Disk is the path of the node's raw virtual disk.
func (n Node) Disk() string { return filepath.Join(n.Dir, "disk.raw") }

// Console is the path of the node's serial console log (appended across
// boots).
func (n Node) Console() string { return filepath.Join(n.Dir, "console.log") }

// ChassisLog is the path of the BMC's chassis-control log: one line per
// power or boot-device action, host Unix time first.
func (n Node) ChassisLog() string { return filepath.Join(n.Dir, "chassis.log") }

// Rig is a running QEMU rig.
type Rig struct {
	Nodes []Node

	cfg  Config
	ns   string
	lock *os.File // flock on <Dir>/.lock, held while the rig runs
	bmcs []*exec.Cmd
	log  *slog.Logger
}

// Start creates the rig's namespace, bridge and taps, one folder and one
// ipmi_sim BMC per VM (VMs stay off until their BMC powers them on), after
// removing whatever a previous rig in cfg.Dir left behind. On error
// everything already created is removed.
func Start(ctx context.Context, cfg Config) (r *Rig, err error) {
	if m := Missing(); len(m) > 0 {
		return nil, fmt.Errorf("qemu rig: missing %s", strings.Join(m, ", "))
	}
	if cfg.Dir == "" {
		return nil, errors.New("qemu rig: Config.Dir is required")
	}
	if cfg.Nodes == 0 {
		cfg.Nodes = 2
	}
	if cfg.Nodes < 1 || cfg.Nodes > MaxNodes {
		return nil, fmt.Errorf("qemu rig: %d nodes is outside 1…%d", cfg.Nodes, MaxNodes)
	}
	if cfg.Rack == "" {
		cfg.Rack = "r01"
	}
	switch cfg.Firmware {
	case "":
		cfg.Firmware = FirmwareBIOS
	case FirmwareBIOS, FirmwareUEFI, FirmwareMixed:
	default:
		return nil, fmt.Errorf("qemu rig: firmware %q: want %s, %s or %s", cfg.Firmware, FirmwareBIOS, FirmwareUEFI, FirmwareMixed)
	}
	if cfg.MemoryMiB == 0 {
		cfg.MemoryMiB = 512
	}
	if cfg.DiskBytes == 0 {
		cfg.DiskBytes = 64 << 20
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	dir, err := filepath.Abs(cfg.Dir)
	if err != nil {
		return nil, err
	}
	cfg.Dir = dir
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	lock, err := lockDir(dir)
	if err != nil {
		return nil, err
	}
	r = &Rig{cfg: cfg, ns: namespaceName(dir), lock: lock, log: cfg.Log.With("component", "qemu-rig")}
	r.cleanup()
	defer func() {
		if err != nil {
			_ = r.Close()
			r = nil
		}
	}()
	chassis := filepath.Join(dir, "chassis.sh")
	if err := os.WriteFile(chassis, chassisScript, 0o755); err != nil {
		return r, err
	}
	if err := os.WriteFile(filepath.Join(dir, "bmc.emu"), bmcEmu, 0o644); err != nil {
		return r, err
	}
	if err := r.network(ctx); err != nil {
		return r, fmt.Errorf("qemu rig: network: %w", err)
	}
	ports, err := bmcPorts(cfg.BMCPort, cfg.Nodes)
	if err != nil {
		return r, err
	}
	for i := 1; i <= cfg.Nodes; i++ {
		n := Node{
			Name: fmt.Sprintf("%sn%02d", cfg.Rack, i), Rack: cfg.Rack, Slot: i,
			MAC:     net.HardwareAddr{0x52, 0x54, 0x00, 0x52, byte(i >> 8), byte(i)}.String(),
			IP:      fmt.Sprintf("10.77.0.%d", 10+i),
			BMCAddr: net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[i-1])),
			Tap:     fmt.Sprintf("tap%d", i),
		}
		n.Firmware = cfg.Firmware
		if cfg.Firmware == FirmwareMixed {
			n.Firmware = []string{FirmwareUEFI, FirmwareBIOS}[i%2]
		}
		n.Dir = filepath.Join(dir, n.Name)
		if err := r.addNode(ctx, n, chassis); err != nil {
			return r, fmt.Errorf("qemu rig: node %s: %w", n.Name, err)
		}
		r.Nodes = append(r.Nodes, n)
	}
	for _, n := range r.Nodes {
		if err := waitBMC(ctx, n, r.bmcPassword(n.Name)); err != nil {
			return r, fmt.Errorf("qemu rig: node %s: %w", n.Name, err)
		}
	}
	r.log.Info("qemu rig ready", "namespace", r.ns, "nodes", len(r.Nodes), "dir", dir)
	return r, nil
}

func (r *Rig) bmcPassword(node string) string {
	if pw, ok := r.cfg.BMCPasswords[node]; ok {
		return pw
	}
	return BMCPassword
}

// Namespace is the name of the rig's network namespace (`ip netns`).
func (r *Rig) Namespace() string { return r.ns }

// network creates the namespace, its bridge with ServerIP and a default
// route through it (so DHCP replies to 255.255.255.255 have a way out), and
// one tap per VM on the bridge.
func (r *Rig) network(ctx context.Context) error {
	if _, err := run(ctx, "", "ip", "netns", "add", r.ns); err != nil {
		return err
	}
	cmds := [][]string{
		{"link", "set", "lo", "up"},
		{"link", "add", Bridge, "type", "bridge"},
		{"addr", "add", ServerIP + "/24", "dev", Bridge},
		{"link", "set", Bridge, "up"},
		{"route", "add", "default", "dev", Bridge},
	}
	for i := 1; i <= r.cfg.Nodes; i++ {
		tap := fmt.Sprintf("tap%d", i)
		cmds = append(cmds,
			[]string{"tuntap", "add", "dev", tap, "mode", "tap"},
			[]string{"link", "set", tap, "master", Bridge},
			[]string{"link", "set", tap, "up"})
	}
	for _, c := range cmds {
		if _, err := run(ctx, "", "ip", append([]string{"-n", r.ns}, c...)...); err != nil {
			return err
		}
	}
	return nil
}

// addNode writes the VM's folder (disk, QEMU arguments, BMC configuration)
// and starts its BMC.
func (r *Rig) addNode(ctx context.Context, n Node, chassis string) error {
	// A new run starts with an empty folder: logs of an earlier run would
	// mix into this one's timeline.
	if err := os.RemoveAll(n.Dir); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Join(n.Dir, "bmc-state"), 0o755); err != nil {
		return err
	}
	disk, err := os.Create(n.Disk())
	if err != nil {
		return err
	}
	if err := errors.Join(disk.Truncate(r.cfg.DiskBytes), disk.Close()); err != nil {
		return err
	}
	args := []string{
		"-name", n.Name, "-machine", "pc,accel=tcg,graphics=off", "-m", strconv.Itoa(r.cfg.MemoryMiB), "-smp", "1",
		"-display", "none", "-no-user-config", "-nodefaults",
		"-chardev", "file,id=console,append=on,path=" + n.Console(), "-serial", "chardev:console",
		"-netdev", "tap,id=net0,ifname=" + n.Tap + ",script=no,downscript=no",
		"-drive", "file=" + n.Disk() + ",format=raw,if=virtio",
		"-device", "virtio-rng-pci",
		"-device", "qemu-xhci,id=xhci",
		"-qmp", "unix:" + filepath.Join(n.Dir, "qmp.sock") + ",server=on,wait=off",
	}
	if n.Firmware == FirmwareUEFI {
		vars := filepath.Join(n.Dir, "OVMF_VARS.fd")
		if err := copyFile(ovmfVars, vars, 0o644); err != nil {
			return fmt.Errorf("UEFI variables: %w", err)
		}
		args = append(args,
			"-drive", "if=pflash,format=raw,readonly=on,file="+ovmfCode,
			"-drive", "if=pflash,format=raw,file="+vars,
			// No option ROM: OVMF's own virtio-net driver and PXE boot.
			"-device", "virtio-net-pci,netdev=net0,romfile=,mac="+n.MAC)
	} else {
		// QEMU's default option ROM: iPXE (ipxe-qemu).
		args = append(args, "-device", "virtio-net-pci,netdev=net0,mac="+n.MAC)
	}
	files := map[string]string{
		"qemu.args": strings.Join(args, "\n") + "\n",
		"netns":     r.ns + "\n",
	}
	var conf bytes.Buffer
	sum := sha256.Sum256([]byte(n.Name))
	if err := lanConf.Execute(&conf, map[string]any{
		"Node": n.Name, "Port": strings.TrimPrefix(n.BMCAddr, "127.0.0.1:"), "GUID": fmt.Sprintf("%x", sum[:16]),
		"Chassis": chassis, "VMDir": n.Dir, "Username": BMCUsername, "Password": r.bmcPassword(n.Name),
	}); err != nil {
		return err
	}
	files["lan.conf"] = conf.String()
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(n.Dir, name), []byte(content), 0o644); err != nil {
			return err
		}
	}
	logf, err := os.OpenFile(filepath.Join(n.Dir, "bmc.log"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := exec.Command("ipmi_sim", "-n", "-c", filepath.Join(n.Dir, "lan.conf"),
		"-f", filepath.Join(r.cfg.Dir, "bmc.emu"), "-s", filepath.Join(n.Dir, "bmc-state"))
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("ipmi_sim: %w", err)
	}
	r.bmcs = append(r.bmcs, cmd)
	go func() { _ = cmd.Wait() }()
	return os.WriteFile(filepath.Join(n.Dir, "bmc.pid"), []byte(strconv.Itoa(cmd.Process.Pid)+"\n"), 0o644)
}

// waitBMC waits until the node's ipmi_sim answers `chassis power status`
// through ipmitool with the rig's credentials (ipmi_sim is ready in ~15 ms).
func waitBMC(ctx context.Context, n Node, password string) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	host, port, _ := net.SplitHostPort(n.BMCAddr)
	var err error
	for ctx.Err() == nil {
		cmd := exec.CommandContext(ctx, "ipmitool", "-I", "lanplus", "-C", "3", "-H", host, "-p", port,
			"-U", BMCUsername, "-E", "-N", "1", "-R", "1", "chassis", "power", "status")
		cmd.Env = []string{"IPMITOOL_PASSWORD=" + password}
		var out []byte
		if out, err = cmd.CombinedOutput(); err == nil {
			return nil
		}
		err = fmt.Errorf("%w: %s", err, strings.TrimSpace(string(out)))
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("BMC at %s did not answer: %w", n.BMCAddr, err)
}

// SetLink brings node's tap up or down (down: the VM can reach nothing, as a
// NIC with its cable pulled).
func (r *Rig) SetLink(ctx context.Context, node string, up bool) error {
	n, err := r.Node(node)
	if err != nil {
		return err
	}
	state := "down"
	if up {
		state = "up"
	}
	_, err = run(ctx, "", "ip", "-n", r.ns, "link", "set", n.Tap, state)
	return err
}

// Node returns the rig node called name.
func (r *Rig) Node(name string) (Node, error) {
	for _, n := range r.Nodes {
		if n.Name == name {
			return n, nil
		}
	}
	return Node{}, fmt.Errorf("qemu rig: no node %q", name)
}

// BootDevice returns the boot device the node's BMC last recorded ("pxe",
// "default" for the disk, …; "default" when never set).
func (n Node) BootDevice() string {
	b, err := os.ReadFile(filepath.Join(n.Dir, "bootdev"))
	if err != nil {
		return "default"
	}
	return strings.TrimSpace(string(b))
}

// PoweredOn reports whether the node's VM is running.
func (n Node) PoweredOn() bool {
	pid, ok := readPID(filepath.Join(n.Dir, "qemu.pid"))
	return ok && alive(pid, "qemu-system")
}

// Close stops every VM and BMC, deletes the namespace and unlocks the
// folder. The node folders stay for inspection (disks, console and chassis
// logs).
func (r *Rig) Close() error {
	err := r.cleanup()
	if r.lock != nil {
		_ = r.lock.Close() // releases the flock
		r.lock = nil
	}
	return err
}

// lockDir takes an exclusive flock on dir/.lock, so a second rig (another
// rackflow dev on the same state dir) cannot tear this one down as stale.
// The kernel drops the lock when the process dies, so a crashed rig's
// folder is free again.
func lockDir(dir string) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(dir, ".lock"), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("qemu rig: %s is in use by another running rig", dir)
		}
		return nil, fmt.Errorf("qemu rig: lock %s: %w", dir, err)
	}
	return f, nil
}

// cleanup kills the VMs and BMCs recorded in the rig folder (this run's or
// a crashed earlier one's) and deletes the namespace if it exists.
func (r *Rig) cleanup() error {
	vms, _ := filepath.Glob(filepath.Join(r.cfg.Dir, "*", "qemu.pid"))
	bmcs, _ := filepath.Glob(filepath.Join(r.cfg.Dir, "*", "bmc.pid"))
	for _, f := range bmcs {
		stop(f, "ipmi_sim")
	}
	for _, f := range vms {
		stop(f, "qemu-system")
	}
	for _, c := range r.bmcs {
		_ = c.Process.Kill()
	}
	r.bmcs = nil
	if _, err := os.Stat(filepath.Join("/run/netns", r.ns)); err == nil {
		if _, err := run(context.Background(), "", "ip", "netns", "del", r.ns); err != nil {
			r.log.Warn("qemu rig: deleting the namespace", "namespace", r.ns, "err", err)
			return err
		}
	}
	return nil
}

// stop kills the process whose pid pidFile holds if its command name starts
// with comm (a recycled pid is left alone), waits up to 5 s for it to go,
// and removes the file.
func stop(pidFile, comm string) {
	defer os.Remove(pidFile)
	pid, ok := readPID(pidFile)
	if !ok || !alive(pid, comm) {
		return
	}
	_ = syscall.Kill(pid, syscall.SIGTERM)
	for range 50 {
		if !alive(pid, comm) {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	_ = syscall.Kill(pid, syscall.SIGKILL)
}

func readPID(path string) (int, bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, false
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	return pid, err == nil && pid > 0
}

// alive reports whether pid runs a command whose name starts with comm (a
// zombie counts as gone).
func alive(pid int, comm string) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// "pid (comm) state …"
	s := string(b)
	open, end := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
	if open < 0 || end < open || end+2 >= len(s) {
		return false
	}
	return strings.HasPrefix(s[open+1:end], comm[:min(len(comm), 15)]) && s[end+2] != 'Z'
}

// namespaceName names the rig's namespace after its folder, so a later run
// in the same folder finds a stale one: "rfrig-<8 hex>".
func namespaceName(dir string) string {
	sum := sha256.Sum256([]byte(dir))
	return fmt.Sprintf("rfrig-%x", sum[:4])
}

// bmcPorts returns n UDP ports on 127.0.0.1: first, first+1, … or, when
// first is 0, ports the kernel reports free.
func bmcPorts(first, n int) ([]int, error) {
	ports := make([]int, n)
	for i := range ports {
		if first > 0 {
			ports[i] = first + i
			continue
		}
		c, err := net.ListenPacket("udp4", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ports[i] = c.LocalAddr().(*net.UDPAddr).Port
		defer c.Close()
	}
	return ports, nil
}

// Inventory is the inventory of the rig: one rack whose netboot server is
// ServerIP, its nodes with their MACs, production IPs in Subnet and ipmi
// BMCs (driver "ipmi", credentials "rig-ipmi").
func (r *Rig) Inventory() (*inventory.Inventory, error) {
	inv := &inventory.Inventory{
		Credentials: map[string]inventory.Credential{"rig-ipmi": {Username: BMCUsername, Password: BMCPassword}},
		Racks: []inventory.Rack{{
			Name: r.cfg.Rack, Credentials: "rig-ipmi",
			Limits:  inventory.Limits{Clones: 8, PowerOns: 8, InFlight: 64},
			Netboot: inventory.Netboot{ServerIP: ServerIP, Subnet: Subnet, Lease: inventory.Duration(time.Hour)},
		}},
	}
	for _, n := range r.Nodes {
		inv.Nodes = append(inv.Nodes, inventory.Node{
			Name: n.Name, Rack: n.Rack, Slot: n.Slot, MACs: []string{n.MAC}, IP: n.IP,
			BMC: inventory.BMC{Driver: "ipmi", Address: n.BMCAddr},
		})
	}
	data, err := inv.Marshal()
	if err != nil {
		return nil, err
	}
	return inventory.Parse("(qemu rig)", data)
}

// DiskDigest is "sha256:<hex>" of the first size bytes of a disk file.
func DiskDigest(path string, size int64) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.CopyN(h, f, size); err != nil {
		return "", fmt.Errorf("disk %s: %w", path, err)
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil)), nil
}
