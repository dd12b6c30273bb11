package netboot

import (
	"errors"
	"io"
	"net/http"
	"strings"
)

// discoveryScript serves GET /discover/<mac>.ipxe, the iPXE script the DHCP
// server chains an unknown MAC's iPXE to under the UnknownEnrol policy.
// When the discovery store records the MAC in a rack that has a discovery
// profile (Store.PutRackProfile: an identification of the rack is
// running), it is that profile's script with the MAC filled in — the
// identify agent. Otherwise it says on the console that the machine is
// recorded for enrolment, then retries the MAC's own script
// (/boot/<mac>.ipxe) every 30 s, so the machine boots its profile as soon
// as it is adopted (rackflow enrol) and given one. 400 for a bad MAC.
func (h *httpServer) discoveryScript(w http.ResponseWriter, r *http.Request) {
	raw, ok := strings.CutSuffix(r.PathValue("file"), ".ipxe")
	if !ok {
		http.NotFound(w, r)
		return
	}
	mac, err := CanonicalMAC(raw)
	if err != nil {
		http.Error(w, "invalid MAC address", http.StatusBadRequest)
		return
	}
	script := renderDiscoveryScript(mac, h.base())
	if p, rack, ok := h.rackProfile(mac); ok {
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
		"chain --replace --autofree " + base + "/boot/" + mac + ".ipxe || goto retry\n"
}
