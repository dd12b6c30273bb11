package netboot

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// A rack's discovery profile is the boot profile the netboot service hands
// every unknown MAC of that rack (the MACs the DHCP server records under
// the UnknownEnrol policy) instead of the discovery retry loop: while an
// identification of the rack runs, it is the identify profile, so machines
// rackflow does not know boot the agent in identify mode with a pool
// address (Purdue's USB identify for new hardware). One JSON file per rack:
// <dir>/racks/<rack>.json; the profile's MAC is empty (the script is the
// same for every MAC).

const racksDir = "racks"

func (s *Store) rackProfilePath(rack string) string {
	return filepath.Join(s.dir, racksDir, rack+".json")
}

// PutRackProfile validates p (as Put, without a MAC: p.MAC is ignored and
// stored empty) and writes it atomically as rack's discovery profile,
// replacing any previous one. Errors wrap ErrInvalidName for a bad rack
// name and ErrInvalidProfile for a bad profile.
func (s *Store) PutRackProfile(rack string, p Profile) error {
	if err := ValidName(rack); err != nil {
		return fmt.Errorf("put discovery profile: rack: %w", err)
	}
	p.MAC = "00:00:00:00:00:00" // validated as a profile of any MAC
	p, err := p.validate()
	if err != nil {
		return fmt.Errorf("put discovery profile of %s: %w", rack, err)
	}
	p.MAC = ""
	if p.UpdatedAt.IsZero() {
		p.UpdatedAt = time.Now().UTC()
	}
	data, err := json.MarshalIndent(p, "", "  ")
	if err != nil {
		return fmt.Errorf("put discovery profile of %s: %w", rack, err)
	}
	if err := os.MkdirAll(filepath.Join(s.dir, racksDir), 0o755); err != nil {
		return fmt.Errorf("put discovery profile of %s: %w", rack, err)
	}
	if err := writeFileAtomic(s.rackProfilePath(rack), append(data, '\n'), 0o640); err != nil {
		return fmt.Errorf("put discovery profile of %s: %w", rack, err)
	}
	return nil
}

// RackProfile returns rack's discovery profile. Errors wrap ErrNoProfile
// when it has none, ErrInvalidName for a bad rack name.
func (s *Store) RackProfile(rack string) (Profile, error) {
	if err := ValidName(rack); err != nil {
		return Profile{}, fmt.Errorf("discovery profile: rack: %w", err)
	}
	data, err := os.ReadFile(s.rackProfilePath(rack))
	if errors.Is(err, fs.ErrNotExist) {
		return Profile{}, fmt.Errorf("discovery profile of %s: %w", rack, ErrNoProfile)
	}
	if err != nil {
		return Profile{}, fmt.Errorf("discovery profile of %s: %w", rack, err)
	}
	var p Profile
	if err := json.Unmarshal(data, &p); err != nil {
		return Profile{}, fmt.Errorf("discovery profile of %s: decode: %w", rack, err)
	}
	return p, nil
}

// DeleteRackProfile removes rack's discovery profile; a missing one is not
// an error. Errors wrap ErrInvalidName for a bad rack name.
func (s *Store) DeleteRackProfile(rack string) error {
	if err := ValidName(rack); err != nil {
		return fmt.Errorf("delete discovery profile: rack: %w", err)
	}
	err := os.Remove(s.rackProfilePath(rack))
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		return fmt.Errorf("delete discovery profile of %s: %w", rack, err)
	}
	if err := syncDir(filepath.Join(s.dir, racksDir)); err != nil {
		return fmt.Errorf("delete discovery profile of %s: %w", rack, err)
	}
	return nil
}
