// Package redfishemu emulates the Redfish service of one server's BMC, well
// enough for bmclib's gofish provider (and gofish itself) to drive it end to
// end over real HTTPS: service root, SessionService with X-Auth-Token
// sessions (and HTTP basic auth), one ComputerSystem with PowerState, the
// boot source override (PATCH) and the #ComputerSystem.Reset action, one
// Manager and one Chassis.
//
// The power and boot-override state lives in a Machine, which reports every
// power transition to the code that plays the server (package vrack).
package redfishemu

import (
	"errors"
	"fmt"
	"slices"
	"sync"
)

// Boot source override values (Redfish ComputerSystem.Boot).
const (
	OverrideDisabled   = "Disabled"
	OverrideOnce       = "Once"
	OverrideContinuous = "Continuous"

	TargetNone = "None"
	TargetPxe  = "Pxe"
	TargetHdd  = "Hdd"

	ModeLegacy = "Legacy"
	ModeUEFI   = "UEFI"
)

// AllowedTargets are the BootSourceOverrideTarget values the emulator accepts.
var AllowedTargets = []string{TargetNone, TargetPxe, TargetHdd, "Cd", "Usb", "BiosSetup", "Diags", "Utilities", "Floppy", "SDCard", "RemoteDrive"}

// AllowedResetTypes are the #ComputerSystem.Reset ResetType values accepted.
var AllowedResetTypes = []string{"On", "ForceOn", "ForceOff", "GracefulShutdown", "ForceRestart", "GracefulRestart", "PowerCycle", "PushPowerButton", "Nmi"}

var allowedEnabled = []string{OverrideDisabled, OverrideOnce, OverrideContinuous}
var allowedModes = []string{ModeLegacy, ModeUEFI}

// ErrInvalidValue is returned (wrapped) for a boot override or reset type
// outside the allowed values; the HTTP layer answers 400.
var ErrInvalidValue = errors.New("value not allowed")

// Boot is the boot source override of a system.
type Boot struct {
	Enabled string // OverrideDisabled | OverrideOnce | OverrideContinuous
	Target  string // one of AllowedTargets
	Mode    string // ModeLegacy | ModeUEFI
}

// Change is one power transition of a Machine.
type Change struct {
	Power   bool   // power state after the transition
	Restart bool   // firmware starts: power on from off, or a reset while on
	Target  string // when Restart: the device this boot uses (override, else the default target)
	Reset   string // the ResetType that caused it
}

// Machine is the power and boot-override state of one emulated server. It is
// safe for concurrent use. The zero value is not usable: use NewMachine.
type Machine struct {
	mu            sync.Mutex
	on            bool
	boot          Boot
	defaultTarget string
	generation    uint64 // bumped on every change: the system's ETag
	notify        func(Change)
}

// NewMachine returns a powered-off machine with no boot override whose boot
// order starts with defaultTarget (TargetHdd when empty). notify (may be nil)
// is called for every power transition, synchronously and with the machine
// locked, so transitions are reported in order: it must be quick and must not
// call the Machine.
func NewMachine(defaultTarget string, notify func(Change)) *Machine {
	if defaultTarget == "" {
		defaultTarget = TargetHdd
	}
	return &Machine{
		boot:          Boot{Enabled: OverrideDisabled, Target: TargetNone, Mode: ModeLegacy},
		defaultTarget: defaultTarget,
		notify:        notify,
	}
}

// State returns whether the machine is on, its boot override and the
// generation counter (changes with every PATCH or power transition).
func (m *Machine) State() (on bool, boot Boot, generation uint64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.on, m.boot, m.generation
}

// SetBoot merges the non-empty fields of b into the boot override. Values
// outside the allowed sets give an error wrapping ErrInvalidValue and change
// nothing.
func (m *Machine) SetBoot(b Boot) error {
	if b.Enabled != "" && !slices.Contains(allowedEnabled, b.Enabled) {
		return fmt.Errorf("%w: BootSourceOverrideEnabled %q", ErrInvalidValue, b.Enabled)
	}
	if b.Target != "" && !slices.Contains(AllowedTargets, b.Target) {
		return fmt.Errorf("%w: BootSourceOverrideTarget %q", ErrInvalidValue, b.Target)
	}
	if b.Mode != "" && !slices.Contains(allowedModes, b.Mode) {
		return fmt.Errorf("%w: BootSourceOverrideMode %q", ErrInvalidValue, b.Mode)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if b.Enabled != "" {
		m.boot.Enabled = b.Enabled
	}
	if b.Target != "" {
		m.boot.Target = b.Target
	}
	if b.Mode != "" {
		m.boot.Mode = b.Mode
	}
	m.generation++
	return nil
}

// Reset applies a Redfish ResetType:
//
//	On, ForceOn                      off → on (boot); on → nothing
//	ForceOff, GracefulShutdown       on → off; off → nothing
//	PushPowerButton                  toggles
//	ForceRestart, GracefulRestart,
//	PowerCycle                       on → restart (boot again); off → on (boot)
//	Nmi                              nothing (no OS to interrupt)
//
// Unknown types give an error wrapping ErrInvalidValue.
func (m *Machine) Reset(resetType string) error {
	if !slices.Contains(AllowedResetTypes, resetType) {
		return fmt.Errorf("%w: ResetType %q", ErrInvalidValue, resetType)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	switch resetType {
	case "On", "ForceOn":
		if !m.on {
			m.start(resetType)
		}
	case "ForceOff", "GracefulShutdown":
		if m.on {
			m.stop(resetType)
		}
	case "PushPowerButton":
		if m.on {
			m.stop(resetType)
		} else {
			m.start(resetType)
		}
	case "ForceRestart", "GracefulRestart", "PowerCycle":
		m.start(resetType)
	}
	return nil
}

// start powers on (or restarts) and consumes a Once override. m.mu is held.
func (m *Machine) start(reason string) {
	m.on = true
	target := m.defaultTarget
	if m.boot.Enabled != OverrideDisabled {
		target = m.boot.Target
		if target == TargetNone {
			target = m.defaultTarget
		}
	}
	if m.boot.Enabled == OverrideOnce {
		m.boot.Enabled = OverrideDisabled
	}
	m.generation++
	if m.notify != nil {
		m.notify(Change{Power: true, Restart: true, Target: target, Reset: reason})
	}
}

// stop powers off. m.mu is held.
func (m *Machine) stop(reason string) {
	m.on = false
	m.generation++
	if m.notify != nil {
		m.notify(Change{Power: false, Reset: reason})
	}
}
