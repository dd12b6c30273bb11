package netboot

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/insomniacslk/dhcp/iana"
)

// Discovered is what the DHCP server records about an unknown MAC under the
// UnknownEnrol policy (HaDeS' automatic discovery), one JSON file per MAC:
// <DHCPStateDir>/discovered/<mac with dashes>.json.
type Discovered struct {
	MAC       string    `json:"mac"`             // canonical, lower-case, colon-separated
	Arch      uint16    `json:"arch"`            // option 93 (RFC 4578); 0 BIOS when absent
	ArchName  string    `json:"arch_name"`       // e.g. "EFI x86-64"
	Vendor    string    `json:"vendor"`          // option 60, e.g. "PXEClient:Arch:00007:UNDI:003016"
	Subnet    string    `json:"subnet"`          // Subnet.Name (the rack) the request came from
	Relay     string    `json:"relay,omitempty"` // giaddr of the relay agent, "" when direct
	IP        string    `json:"ip,omitempty"`    // pool address it was offered last
	FirstSeen time.Time `json:"first_seen"`
	LastSeen  time.Time `json:"last_seen"`
}

// ErrNotDiscovered is returned (wrapped) for a MAC the discovery store does
// not hold.
var ErrNotDiscovered = errors.New("MAC not discovered")

// DiscoveryStore is the directory of Discovered records. Writes are atomic
// (temp file + rename), so the netboot service and the CLI (rackflow
// discovered, rackflow enrol) may share it.
type DiscoveryStore struct{ dir string }

const discoveredDir = "discovered"

// OpenDiscovery opens (creating) the discovery store of a DHCP state
// directory.
func OpenDiscovery(stateDir string) (*DiscoveryStore, error) {
	if stateDir == "" {
		return nil, errors.New("open discovery store: empty directory")
	}
	dir := filepath.Join(stateDir, discoveredDir)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("open discovery store: %w", err)
	}
	return &DiscoveryStore{dir: dir}, nil
}

func (s *DiscoveryStore) path(mac string) string {
	return filepath.Join(s.dir, strings.ReplaceAll(mac, ":", "-")+".json")
}

// Record stores d, keeping the FirstSeen of an earlier record of the MAC.
// Errors wrap ErrInvalidMAC for a bad MAC.
func (s *DiscoveryStore) Record(d Discovered) error {
	mac, err := CanonicalMAC(d.MAC)
	if err != nil {
		return fmt.Errorf("record discovery: %w", err)
	}
	d.MAC = mac
	if old, err := s.Get(mac); err == nil && !old.FirstSeen.IsZero() && (d.FirstSeen.IsZero() || old.FirstSeen.Before(d.FirstSeen)) {
		d.FirstSeen = old.FirstSeen
	}
	if d.ArchName == "" {
		d.ArchName = iana.Arch(d.Arch).String()
	}
	data, err := json.MarshalIndent(d, "", "  ")
	if err != nil {
		return fmt.Errorf("record discovery %s: %w", mac, err)
	}
	if err := writeFileAtomic(s.path(mac), append(data, '\n'), 0o640); err != nil {
		return fmt.Errorf("record discovery %s: %w", mac, err)
	}
	return nil
}

// Get returns the record of mac. Errors wrap ErrNotDiscovered or
// ErrInvalidMAC.
func (s *DiscoveryStore) Get(mac string) (Discovered, error) {
	canon, err := CanonicalMAC(mac)
	if err != nil {
		return Discovered{}, fmt.Errorf("discovered: %w", err)
	}
	var d Discovered
	err = readJSONFile(s.path(canon), &d)
	if errors.Is(err, fs.ErrNotExist) {
		return Discovered{}, fmt.Errorf("%s: %w", canon, ErrNotDiscovered)
	}
	if err != nil {
		return Discovered{}, fmt.Errorf("discovered %s: %w", canon, err)
	}
	return d, nil
}

// List returns every record, by first sighting (then MAC). A record that
// does not decode is an error naming its file.
func (s *DiscoveryStore) List() ([]Discovered, error) {
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, fmt.Errorf("list discovered: %w", err)
	}
	var out []Discovered
	for _, e := range entries {
		name := e.Name()
		if !e.Type().IsRegular() || strings.HasPrefix(name, ".") || !strings.HasSuffix(name, ".json") {
			continue
		}
		d, err := s.Get(strings.ReplaceAll(strings.TrimSuffix(name, ".json"), "-", ":"))
		if err != nil {
			return nil, fmt.Errorf("list discovered: %s: %w", name, err)
		}
		out = append(out, d)
	}
	slices.SortFunc(out, func(a, b Discovered) int {
		if c := a.FirstSeen.Compare(b.FirstSeen); c != 0 {
			return c
		}
		return strings.Compare(a.MAC, b.MAC)
	})
	return out, nil
}

// Remove deletes the record of mac (after enrolment); a missing record is
// not an error. Errors wrap ErrInvalidMAC.
func (s *DiscoveryStore) Remove(mac string) error {
	canon, err := CanonicalMAC(mac)
	if err != nil {
		return fmt.Errorf("remove discovered: %w", err)
	}
	if err := os.Remove(s.path(canon)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove discovered %s: %w", canon, err)
	}
	return syncDir(s.dir)
}
