package inventory

import (
	"log/slog"
	"net"
	"os"
	"sync"
	"time"

	"github.com/rackflow/rackflow/netboot"
)

// Reloading serves DHCP reservations (netboot.Reservations) from the
// inventory file, reloading it when its modification time or size changes
// (checked at most every 2 s), so a node added by `rackflow enrol` or
// recorded by USB identify (RecordIdentified) gets its reservation without
// a restart. A file that no longer validates is logged and the last good
// inventory kept.
type Reloading struct {
	path string
	log  *slog.Logger

	mu      sync.Mutex
	inv     *Inventory
	mtime   time.Time
	size    int64
	checked time.Time
}

const reloadCheck = 2 * time.Second

// NewReloading serves inv, then the file it was loaded from (inv.File()).
func NewReloading(inv *Inventory, log *slog.Logger) *Reloading {
	r := &Reloading{path: inv.File(), log: log, inv: inv, checked: time.Now()}
	if fi, err := os.Stat(r.path); err == nil {
		r.mtime, r.size = fi.ModTime(), fi.Size()
	}
	return r
}

// Current returns the inventory, reloaded first when the file changed
// (checked at most every 2 s).
func (r *Reloading) Current() *Inventory {
	r.mu.Lock()
	defer r.mu.Unlock()
	if time.Since(r.checked) < reloadCheck {
		return r.inv
	}
	r.checked = time.Now()
	fi, err := os.Stat(r.path)
	if err != nil || fi.ModTime().Equal(r.mtime) && fi.Size() == r.size {
		return r.inv
	}
	r.mtime, r.size = fi.ModTime(), fi.Size()
	inv, err := Load(r.path)
	if err != nil {
		r.log.Error("inventory changed but does not load; keeping the previous one", "err", err)
		return r.inv
	}
	r.log.Info("inventory reloaded", "file", r.path, "nodes", len(inv.Nodes))
	r.inv = inv
	return inv
}

// Reservation implements netboot.Reservations.
func (r *Reloading) Reservation(mac net.HardwareAddr) (netboot.Reservation, bool) {
	return r.Current().Reservation(mac)
}

// ReservedIP implements netboot.Reservations.
func (r *Reloading) ReservedIP(ip net.IP) bool { return r.Current().ReservedIP(ip) }
