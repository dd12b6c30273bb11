package netboot

import (
	"errors"
	"io"
	"net/http"
)

// discoveryScript serves GET /discover/<mac>.ipxe, the iPXE script the DHCP
// server chains an unknown MAC's iPXE to under the UnknownEnrol policy, and
// that the script itself retries:
//
//   - the MAC has its own boot profile (it was adopted: rackflow enrol, or
//     identified): that profile's script, as /boot/<mac>.ipxe;
//   - the discovery store records the MAC in a rack that has a discovery
//     profile (Store.PutRackProfile: an identification of the rack is
//     running): that profile's script with the MAC filled in — the
//     identify agent;
//   - otherwise: it says on the console that the machine is recorded for
//     enrolment, then fetches this script again every 30 s, so a machine
//     already waiting boots its profile, or the identify agent, as soon as
//     there is one.
//
// 400 for a bad MAC.
func (h *httpServer) discoveryScript(w http.ResponseWriter, r *http.Request) {
	mac, ok := scriptMAC(w, r)
	if !ok {
		return
	}
	script := renderDiscoveryScript(mac, h.base())
	if p, err := h.store.Get(mac); err == nil {
		script = renderScript(p, h.base())
		h.log.Info("http: served the MAC's own profile for discovery", "mac", mac, "node", p.Node, "mode", string(p.Mode), "remote", r.RemoteAddr)
	} else if !errors.Is(err, ErrNoProfile) {
		h.log.Error("http: read boot profile", "mac", mac, "err", err)
		http.Error(w, "cannot read boot profile", http.StatusInternalServerError)
		return
	} else if p, rack, ok := h.rackProfile(mac); ok {
		p.MAC = mac
		script = renderScript(p, h.base())
		h.log.Info("http: served the rack's discovery profile", "mac", mac, "rack", rack, "mode", string(p.Mode), "remote", r.RemoteAddr)
	} else {
		h.log.Info("http: served discovery script", "mac", mac, "remote", r.RemoteAddr)
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = io.WriteString(w, script)
}

// rackProfile returns the discovery profile of the rack the discovery
// store records mac in, if any; a read error is logged and treated as none
// (the machine gets the retry loop and asks again).
func (h *httpServer) rackProfile(mac string) (Profile, string, bool) {
	if h.discovery == nil {
		return Profile{}, "", false
	}
	d, err := h.discovery.Get(mac)
	if err != nil {
		if !errors.Is(err, ErrNotDiscovered) {
			h.log.Error("http: read discovery record", "mac", mac, "err", err)
		}
		return Profile{}, "", false
	}
	p, err := h.store.RackProfile(d.Subnet)
	if err != nil {
		if !errors.Is(err, ErrNoProfile) {
			h.log.Error("http: read discovery profile", "rack", d.Subnet, "err", err)
		}
		return Profile{}, "", false
	}
	return p, d.Subnet, true
}

// renderDiscoveryScript renders the discovery script of mac; base is
// "http://host:port".
func renderDiscoveryScript(mac, base string) string {
	return "#!ipxe\n" +
		"echo rackflow: " + mac + " is not in the inventory; it is recorded for enrolment\n" +
		"echo rackflow: an operator adopts it with: rackflow enrol " + mac + " --node NAME\n" +
		":retry\n" +
		"sleep 30\n" +
		"chain --replace --autofree " + base + "/discover/" + mac + ".ipxe || goto retry\n"
}
