// Package inventory loads and validates the operator's inventory: racks, nodes
// and the BMC credentials they reference.
//
// The inventory is a YAML file:
//
//	credentials:
//	  bmc-default: {username: admin, password_file: /etc/rackflow/bmc.pw}
//	racks:
//	  - name: r01
//	    credentials: bmc-default          # inherited by every node of the rack
//	    limits: {clones: 4, power_ons: 4, power_on_interval: 5s, in_flight: 32}
//	    netboot: {server_ip: 10.0.0.1, subnet: 10.0.0.0/24, router: 10.0.0.254, lease: 1h,
//	              pool: 10.0.0.200-10.0.0.249, unknown: enrol}
//	nodes:
//	  - name: r01n01
//	    rack: r01
//	    slot: 1
//	    macs: ["02:52:46:01:00:01"]
//	    ip: 10.0.0.11
//	    bmc: {driver: redfish, address: 10.0.1.11:443}   # credentials: override; absent: no BMC (USB identify)
//	    boot_files: {efi-x86_64: snponly.efi}           # optional, by DHCP option 93 architecture
//
// Credentials are referenced by name and inherited rack → node unless the node
// names its own, as Sysman's per-directory ids files. Every error names the
// file, the line and the field.
package inventory

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/rackflow/rackflow/netboot"
	"gopkg.in/yaml.v3"
)

// Inventory is a validated inventory. Lookups are by node name, rack name or MAC.
type Inventory struct {
	Credentials map[string]Credential `yaml:"credentials"`
	Racks       []Rack                `yaml:"racks"`
	Nodes       []Node                `yaml:"nodes"`

	file  string
	nodes map[string]int
	racks map[string]int
	byMAC map[string]int
	byIP  map[netip.Addr]int
}

// Credential is a BMC user. The password is given inline, or read from
// PasswordFile (first line) or from the environment variable PasswordEnv when
// the credential is resolved.
type Credential struct {
	Username     string `yaml:"username"`
	Password     string `yaml:"password,omitempty"`
	PasswordFile string `yaml:"password_file,omitempty"`
	PasswordEnv  string `yaml:"password_env,omitempty"`
}

// Rack is a group of nodes served by one image server and one netboot service.
type Rack struct {
	Name        string  `yaml:"name"`
	Credentials string  `yaml:"credentials,omitempty"`
	Limits      Limits  `yaml:"limits"`
	Netboot     Netboot `yaml:"netboot"`
	// DrainURL is the rack's drain webhook (Purdue: drain, then reinstall):
	// an absolute http or https URL that Reinstall POSTs its drain request
	// to, then waits for the "drained" signal; "" → no drain step.
	DrainURL string `yaml:"drain_url,omitempty"`
}

// Limits bounds what a rack does at once (enforced by rollouts).
type Limits struct {
	Clones          int      `yaml:"clones,omitempty"`            // concurrent clones
	PowerOns        int      `yaml:"power_ons,omitempty"`         // concurrent power-ons
	PowerOnInterval Duration `yaml:"power_on_interval,omitempty"` // minimum gap between power-ons (HOP-SCOTCH: 5 s)
	InFlight        int      `yaml:"in_flight,omitempty"`         // nodes being provisioned at once
	PermitLease     Duration `yaml:"permit_lease,omitempty"`      // a permit's lease before its holder is checked (default 2m)
}

// Netboot holds the rack's DHCP settings.
type Netboot struct {
	ServerIP string   `yaml:"server_ip"`        // next-server / DHCP server identifier
	Subnet   string   `yaml:"subnet"`           // CIDR holding the nodes' IPs
	Router   string   `yaml:"router,omitempty"` // default gateway handed out by DHCP
	Lease    Duration `yaml:"lease,omitempty"`  // DHCP lease time (default 1 h)
	// Pool is the dynamic range "first-last" (inclusive, inside Subnet)
	// for unknown and identify-mode machines; "" → none.
	Pool string `yaml:"pool,omitempty"`
	// Unknown is the rack's unknown-MAC policy: "ignore" (default) or
	// "enrol" (record it for `rackflow discovered`, lease it a pool address).
	Unknown string `yaml:"unknown,omitempty"`
}

// Node is one physical server.
type Node struct {
	Name string   `yaml:"name"`
	Rack string   `yaml:"rack"`
	Slot int      `yaml:"slot"`          // 1-based position in the rack
	MACs []string `yaml:"macs"`          // canonical lower-case colon form after loading
	IP   string   `yaml:"ip"`            // production address, reserved by DHCP
	BMC  BMC      `yaml:"bmc,omitempty"` // absent: no BMC (HasBMC)

	// BootFiles overrides the netboot service's boot file for the client
	// architectures it names: keys as netboot.ParseArch (bios, efi-x86_64,
	// efi-arm64, ... or a number, DHCP option 93, RFC 4578), values TFTP
	// file names (netboot.ValidBootFile).
	BootFiles map[string]string `yaml:"boot_files,omitempty"`
}

// HasBMC reports whether the node has a BMC entry. A node without one (its
// bmc field absent, as USB identify records a machine rackflow did not
// know) is served by DHCP and netboot but cannot be powered by rackflow:
// its BMC is added later (rackflow enrol, or by editing the inventory).
func (n Node) HasBMC() bool { return n.BMC != (BMC{}) }

// BMC says how to reach a node's baseboard management controller.
type BMC struct {
	Driver      string `yaml:"driver"`  // "redfish" or "ipmi"
	Address     string `yaml:"address"` // host or host:port
	Credentials string `yaml:"credentials,omitempty"`
}

// Duration is a time.Duration written as "5s", "1h".
type Duration time.Duration

// UnmarshalYAML parses a Go duration string.
func (d *Duration) UnmarshalYAML(v *yaml.Node) error {
	p, err := time.ParseDuration(v.Value)
	if err != nil || p < 0 {
		return fmt.Errorf("line %d: %q is not a duration such as 5s or 1h", v.Line, v.Value)
	}
	*d = Duration(p)
	return nil
}

// MarshalYAML writes the duration as a string.
func (d Duration) MarshalYAML() (any, error) { return time.Duration(d).String(), nil }

// Drivers are the BMC drivers rackflow knows.
var Drivers = []string{"redfish", "ipmi"}

var nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]*$`)

// ValidName reports whether s is a valid rack, node, image or version name:
// [a-z0-9][a-z0-9._-]*, at most 63 characters.
func ValidName(s string) bool { return len(s) <= 63 && nameRE.MatchString(s) }

// Error is a validation error at a place in the inventory file.
type Error struct {
	File  string
	Line  int
	Field string // path such as nodes[3].bmc.address
	Msg   string
}

func (e *Error) Error() string { return fmt.Sprintf("%s:%d: %s: %s", e.File, e.Line, e.Field, e.Msg) }

// Load reads and validates the inventory at path.
func Load(path string) (*Inventory, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("inventory: %w", err)
	}
	return Parse(path, data)
}

// Parse validates an inventory; file names it in errors. All problems found are
// returned joined, each an *Error.
func Parse(file string, data []byte) (*Inventory, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	inv := &Inventory{}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(inv); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	inv.file = file
	if err := inv.validate(&root); err != nil {
		return nil, err
	}
	return inv, nil
}

func (inv *Inventory) validate(root *yaml.Node) error {
	var errs []error
	bad := func(msg string, path ...any) {
		errs = append(errs, &Error{File: inv.file, Line: lineOf(root, path...), Field: fieldName(path...), Msg: msg})
	}
	for _, name := range slices.Sorted(maps.Keys(inv.Credentials)) {
		c := inv.Credentials[name]
		if c.Username == "" {
			bad("username is required", "credentials", name, "username")
		}
		set := 0
		for _, s := range []string{c.Password, c.PasswordFile, c.PasswordEnv} {
			if s != "" {
				set++
			}
		}
		if set != 1 {
			bad("exactly one of password, password_file, password_env is required", "credentials", name)
		}
	}
	inv.racks = map[string]int{}
	for i, r := range inv.Racks {
		if !ValidName(r.Name) {
			bad(fmt.Sprintf("%q is not a valid name ([a-z0-9][a-z0-9._-]*, ≤ 63)", r.Name), "racks", i, "name")
		} else if _, dup := inv.racks[r.Name]; dup {
			bad(fmt.Sprintf("rack %q is defined twice", r.Name), "racks", i, "name")
		}
		inv.racks[r.Name] = i
		if _, ok := inv.Credentials[r.Credentials]; r.Credentials != "" && !ok {
			bad(fmt.Sprintf("no credentials named %q", r.Credentials), "racks", i, "credentials")
		}
		for _, l := range []struct {
			field string
			v     int
		}{{"clones", r.Limits.Clones}, {"power_ons", r.Limits.PowerOns}, {"in_flight", r.Limits.InFlight}} {
			if l.v < 0 {
				bad("must not be negative", "racks", i, "limits", l.field)
			}
		}
		if _, err := netip.ParseAddr(r.Netboot.ServerIP); err != nil {
			bad(fmt.Sprintf("%q is not an IP address", r.Netboot.ServerIP), "racks", i, "netboot", "server_ip")
		}
		if _, err := netip.ParsePrefix(r.Netboot.Subnet); err != nil {
			bad(fmt.Sprintf("%q is not a CIDR subnet", r.Netboot.Subnet), "racks", i, "netboot", "subnet")
		}
		if _, err := netip.ParseAddr(r.Netboot.Router); r.Netboot.Router != "" && err != nil {
			bad(fmt.Sprintf("%q is not an IP address", r.Netboot.Router), "racks", i, "netboot", "router")
		}
		if u, err := url.Parse(r.DrainURL); r.DrainURL != "" && (err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "") {
			bad(fmt.Sprintf("%q is not an absolute http or https URL", r.DrainURL), "racks", i, "drain_url")
		}
		for _, e := range validateRackDHCP(r.Netboot) {
			bad(e.msg, "racks", i, "netboot", e.field)
		}
	}
	inv.nodes = map[string]int{}
	inv.byMAC = map[string]int{}
	inv.byIP = map[netip.Addr]int{}
	ips := map[string]int{}
	for i := range inv.Nodes {
		n := &inv.Nodes[i]
		if !ValidName(n.Name) {
			bad(fmt.Sprintf("%q is not a valid name ([a-z0-9][a-z0-9._-]*, ≤ 63)", n.Name), "nodes", i, "name")
		} else if _, dup := inv.nodes[n.Name]; dup {
			bad(fmt.Sprintf("node %q is defined twice", n.Name), "nodes", i, "name")
		}
		inv.nodes[n.Name] = i
		ri, ok := inv.racks[n.Rack]
		if !ok {
			bad(fmt.Sprintf("no rack named %q", n.Rack), "nodes", i, "rack")
		}
		if n.Slot < 1 {
			bad("slot is 1-based and required", "nodes", i, "slot")
		}
		if len(n.MACs) == 0 {
			bad("at least one MAC is required", "nodes", i, "macs")
		}
		for j, m := range n.MACs {
			hw, err := net.ParseMAC(m)
			if err != nil || len(hw) != 6 {
				bad(fmt.Sprintf("%q is not an Ethernet MAC address", m), "nodes", i, "macs", j)
				continue
			}
			n.MACs[j] = hw.String()
			if other, dup := inv.byMAC[hw.String()]; dup {
				bad(fmt.Sprintf("MAC %s is also node %q's", hw, inv.Nodes[other].Name), "nodes", i, "macs", j)
			}
			inv.byMAC[hw.String()] = i
		}
		ip, err := netip.ParseAddr(n.IP)
		switch {
		case err != nil || !ip.Is4():
			bad(fmt.Sprintf("%q is not an IPv4 address", n.IP), "nodes", i, "ip")
		case ok && !inSubnet(inv.Racks[ri].Netboot.Subnet, ip):
			bad(fmt.Sprintf("%s is outside rack %s's subnet %s", ip, n.Rack, inv.Racks[ri].Netboot.Subnet), "nodes", i, "ip")
		default:
			if other, dup := ips[n.IP]; dup {
				bad(fmt.Sprintf("IP %s is also node %q's", n.IP, inv.Nodes[other].Name), "nodes", i, "ip")
			}
			ips[n.IP] = i
			inv.byIP[ip] = i
		}
		for _, key := range slices.Sorted(maps.Keys(n.BootFiles)) {
			if _, err := netboot.ParseArch(key); err != nil {
				bad(err.Error(), "nodes", i, "boot_files", key)
			} else if err := netboot.ValidBootFile(n.BootFiles[key]); err != nil {
				bad(err.Error(), "nodes", i, "boot_files", key)
			}
		}
		if !n.HasBMC() {
			continue // recorded by USB identify without a BMC: not powered by rackflow until one is added
		}
		if !slices.Contains(Drivers, n.BMC.Driver) {
			bad(fmt.Sprintf("unknown driver %q (want one of %s)", n.BMC.Driver, strings.Join(Drivers, ", ")), "nodes", i, "bmc", "driver")
		}
		if n.BMC.Address == "" {
			bad("address is required", "nodes", i, "bmc", "address")
		}
		cred := n.BMC.Credentials
		if cred == "" && ok {
			cred = inv.Racks[ri].Credentials
		}
		if _, found := inv.Credentials[cred]; !found {
			if cred == "" {
				bad("no credentials: set bmc.credentials or the rack's credentials", "nodes", i, "bmc")
			} else {
				bad(fmt.Sprintf("no credentials named %q", cred), "nodes", i, "bmc", "credentials")
			}
		}
	}
	return errors.Join(errs...)
}

func inSubnet(cidr string, ip netip.Addr) bool {
	p, err := netip.ParsePrefix(cidr)
	return err == nil && p.Contains(ip)
}

// lineOf finds the line of the value at path (map keys and sequence indexes)
// in a YAML document, falling back to the deepest node found.
func lineOf(doc *yaml.Node, path ...any) int {
	n := doc
	if n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
		n = n.Content[0]
	}
	for _, p := range path {
		next := child(n, p)
		if next == nil {
			break
		}
		n = next
	}
	return n.Line
}

func child(n *yaml.Node, p any) *yaml.Node {
	switch k := p.(type) {
	case string:
		if n.Kind != yaml.MappingNode {
			return nil
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == k {
				return n.Content[i+1]
			}
		}
	case int:
		if n.Kind == yaml.SequenceNode && k < len(n.Content) {
			return n.Content[k]
		}
	}
	return nil
}

func fieldName(path ...any) string {
	var b strings.Builder
	for _, p := range path {
		switch k := p.(type) {
		case int:
			fmt.Fprintf(&b, "[%d]", k)
		default:
			if b.Len() > 0 {
				b.WriteByte('.')
			}
			fmt.Fprint(&b, k)
		}
	}
	return b.String()
}

// File is the path the inventory was loaded from.
func (inv *Inventory) File() string { return inv.file }

// ErrUnknownNode is returned for a node name the inventory does not hold.
var ErrUnknownNode = errors.New("unknown node")

// Node returns the named node.
func (inv *Inventory) Node(name string) (Node, error) {
	i, ok := inv.nodes[name]
	if !ok {
		return Node{}, fmt.Errorf("%w %q in %s", ErrUnknownNode, name, inv.file)
	}
	return inv.Nodes[i], nil
}

// Rack returns the named rack.
func (inv *Inventory) Rack(name string) (Rack, bool) {
	i, ok := inv.racks[name]
	if !ok {
		return Rack{}, false
	}
	return inv.Racks[i], true
}

// NodeByMAC returns the node owning mac.
func (inv *Inventory) NodeByMAC(mac net.HardwareAddr) (Node, bool) {
	i, ok := inv.byMAC[mac.String()]
	if !ok {
		return Node{}, false
	}
	return inv.Nodes[i], true
}

// RackNames lists the racks in file order.
func (inv *Inventory) RackNames() []string {
	names := make([]string, len(inv.Racks))
	for i, r := range inv.Racks {
		names[i] = r.Name
	}
	return names
}

// Credential resolves the BMC credential of node: the node's own reference,
// else its rack's, with the password read from its file or environment.
func (inv *Inventory) Credential(node Node) (Credential, error) {
	ref := node.BMC.Credentials
	if ref == "" {
		r, _ := inv.Rack(node.Rack)
		ref = r.Credentials
	}
	c, ok := inv.Credentials[ref]
	if !ok {
		return Credential{}, fmt.Errorf("node %s: no credentials named %q", node.Name, ref)
	}
	switch {
	case c.PasswordFile != "":
		data, err := os.ReadFile(c.PasswordFile)
		if err != nil {
			return Credential{}, fmt.Errorf("credentials %q: %w", ref, err)
		}
		c.Password, _, _ = strings.Cut(string(data), "\n")
	case c.PasswordEnv != "":
		v, ok := os.LookupEnv(c.PasswordEnv)
		if !ok {
			return Credential{}, fmt.Errorf("credentials %q: environment variable %s is not set", ref, c.PasswordEnv)
		}
		c.Password = v
	}
	return c, nil
}

// Marshal renders the inventory as YAML.
func (inv *Inventory) Marshal() ([]byte, error) { return yaml.Marshal(inv) }
