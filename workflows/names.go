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

// ProvisionWorkflowID is the ID of every single-node operation on node:
// "node/<name>". One node runs one operation at a time; the ID is the lock.
func ProvisionWorkflowID(node string) string { return "node/" + node }

// Signal and query names.
const (
	SignalCheckIn = "check-in" // payload CheckIn
	QueryProgress = "progress" // result Progress
)

// Activity names. Their inputs and results are the types in activity.go.
const (
	ActivityLookupNode  = "LookupNode"
	ActivityClone       = "Clone"
	ActivityDestroyRoot = "DestroyRoot"
	ActivityExport      = "Export"
	ActivityUnexport    = "Unexport"
	ActivitySetBoot     = "SetBoot"
	ActivityPowerCycle  = "PowerCycle"
	// ActivityRequestPermit signals-with-start the rack's limiter with a
	// PermitRequest (global queue).
	ActivityRequestPermit = "RequestPermit"
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

// Phases of Provision in the order they happen.
const (
	PhaseStarting    Phase = "starting"
	PhaseWaiting     Phase = "waiting-for-permit"
	PhaseCloning     Phase = "cloning"
	PhaseExporting   Phase = "exporting"
	PhaseSettingBoot Phase = "setting-boot"
	PhasePowerCycle  Phase = "power-cycling"
	PhaseAwaiting    Phase = "awaiting-check-in"
	PhaseFinalizing  Phase = "finalizing"
	PhaseProvisioned Phase = "provisioned"
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
	ErrBMCAuth        = "BMCAuth"
	ErrBMCDriver      = "BMCDriver"
	ErrCheckInTimeout = "CheckInTimeout"
	ErrNodeReported   = "NodeReportedError"
	ErrDigestMismatch = "DigestMismatch"
	ErrUnknownRack    = "UnknownRack"
	// ErrRolloutNotCompleted fails a rollout that ended failed or
	// cancelled; its details hold the RolloutResult.
	ErrRolloutNotCompleted = "RolloutNotCompleted"
)

// StartAttributes are the search attributes a node operation starts with, so
// that it is found by node and image before its first step runs.
func StartAttributes(node, image string) temporal.SearchAttributes {
	return temporal.NewSearchAttributes(
		AttrNode.ValueSet(node), AttrImage.ValueSet(image), AttrPhase.ValueSet(string(PhaseStarting)))
}

// RackAttributes are the search attributes of a rack-wide workflow.
func RackAttributes(rack string) temporal.SearchAttributes {
	return temporal.NewSearchAttributes(AttrRack.ValueSet(rack))
}
