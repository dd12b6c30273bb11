package netboot

import (
	"io"
	"net/http"
	"strings"
)

// discoveryScript serves GET /discover/<mac>.ipxe, the iPXE script the DHCP
// server chains an unknown MAC's iPXE to under the UnknownEnrol policy: it
// says on the console that the machine is recorded for enrolment, then
// retries the MAC's own script (/boot/<mac>.ipxe) every 30 s, so the
// machine boots its profile as soon as it is adopted (rackflow enrol) and
// given one. 400 for a bad MAC.
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
	h.log.Info("http: served discovery script", "mac", mac, "remote", r.RemoteAddr)
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = io.WriteString(w, renderDiscoveryScript(mac, h.base()))
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
