// Package workflows holds rackflow's workflow definitions, their inputs and
// outputs, and the names other programs use to reach them: task queues,
// signals, queries, activity names and search-attribute keys.
//
// Everything here is deterministic workflow code: no I/O, no wall clock, no
// goroutines, no map iteration. Activities are called by name; their
// implementations live in package activities.
package workflows

import (
	"go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/temporal"
)

// TaskQueue runs the workflows and the activities that need no rack.
const TaskQueue = "rackflow"

// RackTaskQueue is the queue of the activities that must run next to a rack:
// image server, boot-profile store, BMC network ("rackflow-rack-<rack>").
func RackTaskQueue(rack string) string { return "rackflow-rack-" + rack }

// NodeWorkflowID is the ID of every single-node operation on node
// (Provision, Reinstall, Release): "node/<name>". One node runs one
// operation at a time; the ID is the lock.
func NodeWorkflowID(node string) string { return "node/" + node }

// ProvisionWorkflowID is NodeWorkflowID, under the name it had when
// Provision was the only single-node operation.
//
// Deprecated: use NodeWorkflowID.
func ProvisionWorkflowID(node string) string { return NodeWorkflowID(node) }

// Signal and query names.
const (
	SignalCheckIn = "check-in" // payload CheckIn
	// SignalDrained tells a Reinstall waiting in its drain step that the
	// node's users are off it (no payload; the webhook names the workflow
	// and run to signal).
	SignalDrained = "drained"
	QueryProgress = "progress" // result Progress
)

// Activity names. Their inputs and results are the types in activity.go.
const (
	ActivityLookupNode  = "LookupNode"
	ActivityClone       = "Clone"
	ActivityDestroyRoot = "DestroyRoot"
	ActivityExport      = "Export"
	ActivityUnexport    = "Unexport"
	// ActivityEndSeeding withdraws the .torrents of the exports a rack's
	// share of a rollout provisioned when the share ends, so their agents
	// stop seeding (rack queue; []Torrent).
	ActivityEndSeeding = "EndSeeding"
	ActivitySetBoot    = "SetBoot"
	ActivityPowerCycle = "PowerCycle"
	ActivityPowerOff   = "PowerOff"
	// ActivitySetDiscoveryBoot writes (or removes) a rack's discovery
	// profile: the identify agent for the rack's unknown MACs (rack
	// queue; DiscoveryBootInput).
	ActivitySetDiscoveryBoot = "SetDiscoveryBoot"
	// ActivityRecordIdentified records an identified machine's MAC →
	// node in the inventory (rack queue; RecordIdentifiedInput, result
	// RecordIdentifiedResult).
	ActivityRecordIdentified = "RecordIdentified"
	// ActivityRequestDrain asks the inventory's webhook to drain a node
	// (global queue).
	ActivityRequestDrain = "RequestDrain"
	// ActivityRequestPermit signals-with-start the rack's limiter with a
	// PermitRequest (global queue).
	ActivityRequestPermit = "RequestPermit"
	// ActivityCheckOwner asks the ownership directory whether a user owns
	// a node or is a member of it (global queue; CheckOwnerInput).
	ActivityCheckOwner = "CheckOwner"
	// ActivityClearOwner clears a node's owner in the ownership directory
	// (global queue; ClearOwnerInput, result the previous owner's DN).
	ActivityClearOwner = "ClearOwner"
)

// Typed search attributes (all Keyword), as in DESIGN.md "Visibility".
var (
	AttrNode    = temporal.NewSearchAttributeKeyKeyword("RackflowNode")
	AttrRack    = temporal.NewSearchAttributeKeyKeyword("RackflowRack")
	AttrImage   = temporal.NewSearchAttributeKeyKeyword("RackflowImage")
	AttrPhase   = temporal.NewSearchAttributeKeyKeyword("RackflowPhase")
	AttrRollout = temporal.NewSearchAttributeKeyKeyword("RackflowRollout")
	AttrOwner   = temporal.NewSearchAttributeKeyKeyword("RackflowOwner")
)

// SearchAttributes maps every attribute rackflow uses to its type, for
// registration with a Temporal namespace.
func SearchAttributes() map[string]enums.IndexedValueType {
	m := map[string]enums.IndexedValueType{}
	for _, k := range []temporal.SearchAttributeKeyKeyword{AttrNode, AttrRack, AttrImage, AttrPhase, AttrRollout, AttrOwner} {
		m[k.GetName()] = enums.INDEXED_VALUE_TYPE_KEYWORD
	}
	return m
}

// Phase is where a node operation stands; it is the RackflowPhase attribute.
type Phase string

// Phases of the node operations. Provision goes from starting to
// provisioned; Reinstall drains and destroys the root first; Release goes
// from starting to released.
const (
	PhaseStarting    Phase = "starting"
	PhaseDraining    Phase = "draining"
	PhaseDestroying  Phase = "destroying-root"
	PhaseWaiting     Phase = "waiting-for-permit"
	PhaseCloning     Phase = "cloning"
	PhaseExporting   Phase = "exporting"
	PhaseSettingBoot Phase = "setting-boot"
	PhasePowerCycle  Phase = "power-cycling"
	PhaseAwaiting    Phase = "awaiting-check-in"
	PhaseFinalizing  Phase = "finalizing"
	PhaseProvisioned Phase = "provisioned"
	PhasePoweringOff Phase = "powering-off"
	PhaseUnexporting Phase = "unexporting"
	PhaseClearOwner  Phase = "clearing-owner"
	PhaseReleased    Phase = "released"
	PhaseIdentifying Phase = "identify-mode" // booted into identify mode, waiting for its USB drive
	PhaseUndoing     Phase = "undoing"
	PhaseFailed      Phase = "failed"
)

// Error types of non-retryable ApplicationErrors, for callers to match on.
const (
	ErrUnknownNode    = "UnknownNode"
	ErrUnknownImage   = "UnknownImage"
	ErrUnknownVersion = "UnknownVersion"
	ErrInvalidName    = "InvalidName"
	ErrRootConflict   = "RootConflict"
	ErrImageUnusable  = "ImageUnusable" // the root's image file is missing, empty or unreadable
	ErrBMCAuth        = "BMCAuth"
	ErrBMCDriver      = "BMCDriver"
	ErrCheckInTimeout = "CheckInTimeout"
	ErrNodeReported   = "NodeReportedError"
	ErrDigestMismatch = "DigestMismatch"
	ErrUnknownRack    = "UnknownRack"
	// ErrInventoryConflict: an identified machine's MAC, name or address
	// is already another node's in the inventory.
	ErrInventoryConflict = "InventoryConflict"
	ErrInvalidPolicy     = "InvalidPolicy" // a Release policy that is not one of Release*
	ErrDrainRejected     = "DrainRejected" // the drain webhook answered 4xx or its URL is unusable
	ErrDrainTimeout      = "DrainTimeout"  // no drained signal within the drain timeout
	// ErrNotOwner: the requesting user (the input's User) neither owns the
	// node nor is a member of it in the ownership directory.
	ErrNotOwner = "NotOwner"
	// ErrOwnershipNotConfigured: an input names a User but the worker has
	// no ownership directory to check it against.
	ErrOwnershipNotConfigured = "OwnershipNotConfigured"
	// ErrInvalidUser: the input's User is not a distinguished name.
	ErrInvalidUser = "InvalidUser"
	// ErrOwnershipAuth: the directory refused the worker's service account
	// (wrong DN or password, or not allowed to read or clear owners).
	ErrOwnershipAuth = "OwnershipAuth"
	// ErrRolloutNotCompleted fails a rollout that ended failed or
	// cancelled; its details hold the RolloutResult.
	ErrRolloutNotCompleted = "RolloutNotCompleted"
)

// StartAttributes are the search attributes a node operation starts with, so
// that it is found by node and image before its first step runs. An empty
// image (Release) is left unset.
func StartAttributes(node, image string) temporal.SearchAttributes {
	return UserStartAttributes(node, image, "")
}

// UserStartAttributes are StartAttributes with RackflowOwner set to the
// requesting user (left unset when user is empty).
func UserStartAttributes(node, image, user string) temporal.SearchAttributes {
	set := []temporal.SearchAttributeUpdate{AttrNode.ValueSet(node), AttrPhase.ValueSet(string(PhaseStarting))}
	if image != "" {
		set = append(set, AttrImage.ValueSet(image))
	}
	if user != "" {
		set = append(set, AttrOwner.ValueSet(user))
	}
	return temporal.NewSearchAttributes(set...)
}

// RackAttributes are the search attributes of a rack-wide workflow.
func RackAttributes(rack string) temporal.SearchAttributes {
	return temporal.NewSearchAttributes(AttrRack.ValueSet(rack))
}
