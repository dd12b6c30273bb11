package activities

import (
	"context"
	"errors"
	"fmt"
	"net/netip"

	"github.com/rackflow/rackflow/activities/inventory"
	"github.com/rackflow/rackflow/netboot"
	"github.com/rackflow/rackflow/workflows"
	"go.temporal.io/sdk/temporal"
)

// identifyProfile is the boot profile of the identify agent of scope (no
// MAC): the installer kernel and initrd with netboot.IdentifyArgs (the
// identify URL, the scope, and a token bound to the scope).
func (a *Activities) identifyProfile(scope string) (netboot.Profile, error) {
	args := netboot.IdentifyArgs{URL: a.HTTPBase + "/v1/identify", Scope: scope, Token: netboot.MintIdentifyToken(a.CheckInKey, scope)}
	if err := args.Validate(); err != nil {
		return netboot.Profile{}, err
	}
	return netboot.Profile{Mode: netboot.ModeInstall, Kernel: a.Kernel, Initrd: a.Initrd,
		Args: append(append([]string{}, a.KernelArgs...), args.Encode()...)}, nil
}

// SetDiscoveryBoot writes the rack's discovery profile, the identify agent
// of in.Scope that the netboot service hands the rack's unknown MACs
// (netboot.Store.PutRackProfile), or removes it (in.Remove; idempotent). An
// unknown rack is a non-retryable UnknownRack error, an invalid scope an
// InvalidName error.
func (a *Activities) SetDiscoveryBoot(ctx context.Context, in workflows.DiscoveryBootInput) error {
	inv := a.inv()
	r, ok := inv.Rack(in.Rack)
	if !ok {
		return temporal.NewNonRetryableApplicationError(fmt.Sprintf("unknown rack %q in %s", in.Rack, inv.File()), workflows.ErrUnknownRack, nil)
	}
	if in.Remove {
		if err := a.Boot.DeleteRackProfile(r.Name); err != nil {
			return fmt.Errorf("remove the discovery profile of %s: %w", r.Name, err)
		}
		a.Log.Info("discovery profile removed", "rack", r.Name)
		return nil
	}
	p, err := a.identifyProfile(in.Scope)
	if err != nil {
		return temporal.NewNonRetryableApplicationError(fmt.Sprintf("discovery profile of %s: %v", r.Name, err), workflows.ErrInvalidName, err)
	}
	p.Rack = r.Name
	if err := a.Boot.PutRackProfile(r.Name, p); err != nil {
		return fmt.Errorf("discovery profile of %s: %w", r.Name, err)
	}
	if r.Netboot.Unknown != string(netboot.UnknownEnrol) {
		a.Log.Warn("discovery profile written, but the rack's unknown-MAC policy is not enrol: unknown machines get no address", "rack", r.Name, "unknown", r.Netboot.Unknown)
	}
	a.Log.Info("discovery profile written: unknown machines boot the identify agent", "rack", r.Name, "scope", in.Scope)
	return nil
}

// RecordIdentified records an identified machine in the inventory file as
// a node of in.Rack (inventory.RecordIdentified: MAC → name, slot and
// production address, without a BMC), so that the netboot service's
// reservation, reloaded from the file, gives it its production address. A
// MAC, name or address that is already another node's is a non-retryable
// InventoryConflict error, an entry the inventory does not accept (unknown
// rack, address outside the rack's subnet) an InvalidName error; the file
// is then untouched. Repeating it is harmless.
//
// Operations on the new node find it once the worker's inventory is
// reloaded (Activities.Current); powering it needs its BMC added.
func (a *Activities) RecordIdentified(ctx context.Context, in workflows.RecordIdentifiedInput) (workflows.RecordIdentifiedResult, error) {
	as := in.Assignment
	ip := as.IP
	if p, err := netip.ParsePrefix(ip); err == nil {
		ip = p.Addr().String()
	}
	n := inventory.Node{Name: as.Name, Rack: in.Rack, Slot: as.Slot, MACs: []string{as.MAC}, IP: ip}
	inv, changed, err := inventory.RecordIdentified(a.inv().File(), n)
	switch {
	case errors.Is(err, inventory.ErrMACTaken), errors.Is(err, inventory.ErrNameTaken):
		return workflows.RecordIdentifiedResult{}, temporal.NewNonRetryableApplicationError(err.Error(), workflows.ErrInventoryConflict, err)
	case err != nil:
		var ie *inventory.Error
		if errors.As(err, &ie) || errors.Is(err, inventory.ErrInvalidNode) {
			return workflows.RecordIdentifiedResult{}, temporal.NewNonRetryableApplicationError(err.Error(), workflows.ErrInvalidName, err)
		}
		return workflows.RecordIdentifiedResult{}, fmt.Errorf("record %s in the inventory: %w", as.Name, err)
	}
	rec, _ := inv.Node(as.Name)
	a.Log.Info("identified machine recorded in the inventory", "node", as.Name, "rack", in.Rack, "mac", as.MAC, "ip", ip, "changed", changed, "bmc", rec.HasBMC())
	return workflows.RecordIdentifiedResult{Node: as.Name, Changed: changed, NoBMC: !rec.HasBMC()}, nil
}
