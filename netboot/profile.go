package netboot

import (
	"errors"
	"fmt"
	"net"
	"regexp"
	"strings"
	"time"
	"unicode"
)

// Mode of a boot profile.
type Mode string

const (
	// ModeLocal boots the local disk: the iPXE script is "#!ipxe\nexit\n".
	ModeLocal Mode = "local"
	// ModeInstall boots a kernel + initrd from /artifacts/ with Args on the
	// kernel command line.
	ModeInstall Mode = "install"
)

// Profile is what the netboot service hands one MAC.
type Profile struct {
	MAC       string    `json:"mac"`              // canonical "02:52:46:01:00:01", lower-case
	Node      string    `json:"node"`             // node name, [a-z0-9][a-z0-9._-]* (max 63) when set
	Rack      string    `json:"rack"`             // rack name, informational
	Mode      Mode      `json:"mode"`             // ModeLocal or ModeInstall
	Kernel    string    `json:"kernel,omitempty"` // artifact name under /artifacts/, e.g. "vmlinuz" (required for ModeInstall)
	Initrd    string    `json:"initrd,omitempty"` // artifact name, e.g. "initrd.img" (optional)
	Args      []string  `json:"args,omitempty"`   // extra kernel command-line words (AgentArgs.Encode())
	UpdatedAt time.Time `json:"updated_at"`       // set by Store.Put when zero
}

var (
	// ErrNoProfile is returned (wrapped) by Store.Get when a MAC has no profile.
	ErrNoProfile = errors.New("no boot profile for this MAC")
	// ErrInvalidMAC is returned (wrapped) for a MAC that is not a 6-byte
	// Ethernet address.
	ErrInvalidMAC = errors.New("invalid MAC address")
	// ErrInvalidName is returned (wrapped) for a node name that does not
	// match [a-z0-9][a-z0-9._-]* (max 63 bytes).
	ErrInvalidName = errors.New("invalid name")
	// ErrInvalidProfile is returned (wrapped) by Store.Put for a profile
	// with a bad mode, artifact name or kernel argument.
	ErrInvalidProfile = errors.New("invalid boot profile")
)

var (
	nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]*$`)
	runRE  = regexp.MustCompile(`^[0-9A-Za-z-]+$`)
)

// ValidName reports an error wrapping ErrInvalidName unless name matches
// [a-z0-9][a-z0-9._-]* and is at most 63 bytes long.
func ValidName(name string) error {
	if len(name) > 63 || !nameRE.MatchString(name) {
		return fmt.Errorf("%w: %q (want [a-z0-9][a-z0-9._-]*, max 63)", ErrInvalidName, name)
	}
	return nil
}

// ValidRun reports an error wrapping ErrInvalidName unless run, a
// workflow run ID (a UUID in Temporal), matches [0-9A-Za-z-]+ and is at
// most 64 bytes long: it names a file (Store.PutTorrent), so it carries no
// dot or slash.
func ValidRun(run string) error {
	if len(run) > 64 || !runRE.MatchString(run) {
		return fmt.Errorf("%w: run %q (want [0-9A-Za-z-]+, max 64)", ErrInvalidName, run)
	}
	return nil
}

// CanonicalMAC parses a 6-byte MAC in any form net.ParseMAC accepts
// ("02:52:46:01:00:01", "02-52-46-01-00-01", "0252.4601.0001", any case) and
// returns it lower-case, colon-separated. Errors wrap ErrInvalidMAC.
func CanonicalMAC(s string) (string, error) {
	hw, err := net.ParseMAC(s)
	if err != nil {
		return "", fmt.Errorf("%w: %q", ErrInvalidMAC, s)
	}
	if len(hw) != 6 {
		return "", fmt.Errorf("%w: %q is not a 6-byte Ethernet address", ErrInvalidMAC, s)
	}
	return hw.String(), nil
}

// validate checks p and returns a copy with a canonical MAC.
func (p Profile) validate() (Profile, error) {
	mac, err := CanonicalMAC(p.MAC)
	if err != nil {
		return p, err
	}
	p.MAC = mac
	if p.Node != "" {
		if err := ValidName(p.Node); err != nil {
			return p, fmt.Errorf("%w: node: %w", ErrInvalidProfile, err)
		}
	}
	switch p.Mode {
	case ModeLocal:
	case ModeInstall:
		if p.Kernel == "" {
			return p, fmt.Errorf("%w: mode %q needs a kernel", ErrInvalidProfile, p.Mode)
		}
	default:
		return p, fmt.Errorf("%w: unknown mode %q (want %q or %q)", ErrInvalidProfile, p.Mode, ModeLocal, ModeInstall)
	}
	for _, a := range []struct{ field, name string }{{"kernel", p.Kernel}, {"initrd", p.Initrd}} {
		if a.name == "" {
			continue
		}
		if err := validArtifactName(a.name); err != nil {
			return p, fmt.Errorf("%w: %s: %w", ErrInvalidProfile, a.field, err)
		}
	}
	for _, w := range p.Args {
		if err := validWord(w); err != nil {
			return p, fmt.Errorf("%w: kernel argument: %w", ErrInvalidProfile, err)
		}
	}
	return p, nil
}

// validArtifactName accepts a relative slash-separated path without empty,
// "." or ".." elements and without characters that would break an iPXE line
// or a URL.
func validArtifactName(name string) error {
	if err := validWord(name); err != nil {
		return err
	}
	if strings.ContainsAny(name, `\?#%`) {
		return fmt.Errorf("artifact name %q contains one of \\ ? # %%", name)
	}
	for _, el := range strings.Split(name, "/") {
		if el == "" || el == "." || el == ".." {
			return fmt.Errorf("artifact name %q is not a clean relative path", name)
		}
	}
	return nil
}

// validWord accepts a non-empty string without spaces or control
// characters, i.e. one word of an iPXE script line / kernel command line.
func validWord(w string) error {
	if w == "" {
		return errors.New("empty word")
	}
	for _, r := range w {
		if unicode.IsSpace(r) || unicode.IsControl(r) || r == unicode.ReplacementChar {
			return fmt.Errorf("word %q contains a space or control character", w)
		}
	}
	return nil
}
