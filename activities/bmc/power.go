package bmc

import (
	"context"
	"fmt"
	"strings"
)

// Power states returned by PowerState.
const (
	PowerOnState  = "on"
	PowerOffState = "off"
)

// Boot devices accepted by SetBootDevice.
const (
	BootPXE  = "pxe"
	BootDisk = "disk"
)

// bmclib power actions. bmclib maps the same word to different operations per
// provider: "cycle" is Redfish ForceRestart (no power removal) but ipmitool
// `chassis power cycle` (power removal); "reset" is Redfish PowerCycle (power
// removal) but ipmitool `chassis power reset` (warm reset). powerAction picks
// the word that gives the same semantics on both drivers.
func (c *Client) powerAction(powerRemoval bool) string {
	if (c.driver == DriverRedfish) == powerRemoval {
		return "reset"
	}
	return "cycle"
}

// PowerState returns "on" or "off" (Redfish PoweringOn/PoweringOff count as
// the state being reached).
func (c *Client) PowerState(ctx context.Context) (string, error) {
	var raw string
	err := c.call(ctx, func(ctx context.Context) (err error) {
		raw, err = c.bmc.GetPowerState(ctx)
		return err
	})
	if err != nil {
		return "", fmt.Errorf("bmc %s: power state: %w", c.addr, err)
	}
	state, err := normalizePower(raw)
	if err != nil {
		return "", fmt.Errorf("bmc %s: power state: %w", c.addr, err)
	}
	return state, nil
}

// normalizePower maps a provider's answer ("On", "PoweringOff", "Chassis
// Power is on\n") to "on" / "off".
func normalizePower(raw string) (string, error) {
	s := strings.ToLower(strings.TrimSpace(raw))
	switch {
	case s == "on" || s == "poweringon" || strings.Contains(s, "chassis power is on"):
		return PowerOnState, nil
	case s == "off" || s == "poweringoff" || strings.Contains(s, "chassis power is off"):
		return PowerOffState, nil
	}
	return "", fmt.Errorf("unrecognised power state %q", raw)
}

// PowerOn powers the node on; a node already on is left alone.
func (c *Client) PowerOn(ctx context.Context) error {
	return c.setPower(ctx, "power on", "on")
}

// PowerOff removes power immediately (Redfish ForceOff, ipmitool `chassis
// power off`); a node already off is left alone.
func (c *Client) PowerOff(ctx context.Context) error {
	return c.setPower(ctx, "power off", "off")
}

// PowerCycle makes the node boot again with a power removal: a node that is
// off is powered on, a node that is on is cycled (Redfish ResetType
// PowerCycle, ipmitool `chassis power cycle`).
func (c *Client) PowerCycle(ctx context.Context) error {
	return c.restart(ctx, "power cycle", true)
}

// PowerReset makes the node boot again without a power removal: a node that
// is off is powered on, a node that is on is reset (Redfish ResetType
// ForceRestart, ipmitool `chassis power reset`).
func (c *Client) PowerReset(ctx context.Context) error {
	return c.restart(ctx, "power reset", false)
}

func (c *Client) restart(ctx context.Context, op string, powerRemoval bool) error {
	state, err := c.PowerState(ctx)
	if err != nil {
		return err
	}
	if state == PowerOffState {
		return c.setPower(ctx, op, "on")
	}
	return c.setPower(ctx, op, c.powerAction(powerRemoval))
}

func (c *Client) setPower(ctx context.Context, op, action string) error {
	err := c.call(ctx, func(ctx context.Context) error {
		ok, err := c.bmc.SetPowerState(ctx, action)
		if err == nil && !ok {
			return fmt.Errorf("bmclib reported %q as not done", action)
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("bmc %s: %s: %w", c.addr, op, err)
	}
	c.log.Info("bmc power", "op", op, "action", action)
	return nil
}

// SetBootDevice sets the next boot device: "pxe" or "disk" (ErrInvalid
// otherwise). persistent keeps it for every boot (Redfish
// BootSourceOverrideEnabled Continuous), else it applies to the next boot
// only (Once). The boot mode is not requested as UEFI: bmclib then sends
// BootSourceOverrideMode "Legacy" on Redfish.
func (c *Client) SetBootDevice(ctx context.Context, device string, persistent bool) error {
	if device != BootPXE && device != BootDisk {
		return fmt.Errorf("bmc %s: set boot device: %w: device %q (want %q or %q)", c.addr, ErrInvalid, device, BootPXE, BootDisk)
	}
	err := c.call(ctx, func(ctx context.Context) error {
		ok, err := c.bmc.SetBootDevice(ctx, device, persistent, false)
		if err == nil && !ok {
			return fmt.Errorf("bmclib reported boot device %q as not set", device)
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("bmc %s: set boot device %s: %w", c.addr, device, err)
	}
	c.log.Info("bmc boot device", "device", device, "persistent", persistent)
	return nil
}
