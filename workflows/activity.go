package workflows

import "time"

// NodeInfo is what the inventory says of a node (no credentials).
type NodeInfo struct {
	Name   string
	Rack   string
	Slot   int
	MACs   []string
	IP     string
	Limits RackLimits // of the node's rack
	// DrainURL is the rack's drain webhook from the inventory; Reinstall
	// uses it when its input names none.
	DrainURL string `json:",omitempty"`
}

// CloneInput asks for node's writable root from image@version. With
// Replace, a root of another image or version is destroyed first (its data
// is lost); without, it is a RootConflict.
type CloneInput struct {
	Node, Image, Version string
	Replace              bool
}

// Root is a node's writable clone of an image version.
type Root struct {
	Node, Image, Version string
	Digest               string // "sha256:<hex>" of the image file
	Size                 int64  // bytes
}

// ExportResult is where nodes fetch an exported root's image.
type ExportResult struct {
	URL    string // HTTP URL of the image file
	Digest string
	// TorrentURL and InfoHash (40 hex digits) are set when the image is
	// also seeded over BitTorrent (the swarm transport).
	TorrentURL string
	InfoHash   string
}

// Torrent names the .torrent of one export published for the swarm:
// Node's, by the workflow run Run (a Provision or Reinstall) that exported
// it, at HTTP /torrents/<Node>/<Run>.torrent. EndSeeding withdraws it.
type Torrent struct {
	Node, Run string
}

// BootMode is what the netboot service hands a node.
type BootMode string

// Boot modes.
const (
	BootLocal   BootMode = "local"   // boot the local disk (the node's default)
	BootInstall BootMode = "install" // netboot the installer agent
	// BootIdentify netboots the agent in identify mode: it waits for a USB
	// drive and asks the scope's identification for its identity.
	BootIdentify BootMode = "identify"
)

// SetBootInput writes the boot profile of every MAC of Node. For BootInstall,
// ImageURL/Digest say what to install and Run (the workflow run ID) is bound
// into the check-in token. For BootIdentify, Scope names the
// identification the agent asks (its token is bound to the scope).
type SetBootInput struct {
	Node     string
	Mode     BootMode
	ImageURL string
	Digest   string
	Run      string
	Scope    string `json:",omitempty"`
	// TorrentURL and InfoHash (from ExportResult) make the agent download
	// through the swarm; empty → plain HTTP.
	TorrentURL string
	InfoHash   string
}

// PowerCycleInput power-cycles Node through its BMC after setting a one-time
// boot device: PXE, or the local disk when Disk is set. Hard means power off,
// then on; otherwise a BMC power cycle (a node that is off is powered on).
type PowerCycleInput struct {
	Node string
	Hard bool
	Disk bool
}

// CheckIn is the check-in signal a verified agent call becomes.
type CheckIn struct {
	Node    string
	Run     string
	Status  string // "ok" or "error"
	Digest  string // what the agent wrote
	Message string
	At      time.Time // when the netboot service received it
}

// CheckOwnerInput asks whether User (a DN) may operate Node: it owns it or
// is a member of it in the ownership directory. Not allowed is a
// non-retryable NotOwner error naming the node, the user and the owner.
type CheckOwnerInput struct {
	Node, User string
}

// ClearOwnerInput clears Node's owner in the ownership directory (the
// worker's service account force-releases it; a free node is fine). User
// is who released the node, for the log.
type ClearOwnerInput struct {
	Node, User string
}

// DiscoveryBootInput writes Rack's discovery profile, the identify agent
// of Scope that the netboot service hands the rack's unknown MACs; with
// Remove it deletes it (Scope unused).
type DiscoveryBootInput struct {
	Rack   string
	Scope  string `json:",omitempty"`
	Remove bool   `json:",omitempty"`
}

// RecordIdentifiedInput records the machine of Assignment (its MAC, name,
// slot and production address) as a node of Rack in the inventory.
type RecordIdentifiedInput struct {
	Rack       string
	Assignment Assignment
}

// RecordIdentifiedResult says what RecordIdentified did: Changed is false
// when the inventory already had the node with that MAC.
type RecordIdentifiedResult struct {
	Node    string
	Changed bool
	// NoBMC: the node has no BMC entry (it was unknown); it must be
	// added before rackflow can power it.
	NoBMC bool
}
