package netboot

import (
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strings"
)

// AgentArgs is what a boot profile tells the node agent, as kernel
// command-line words "rackflow.<key>=<value>".
type AgentArgs struct {
	Node       string // rackflow.node=r01n01
	CheckInURL string // rackflow.checkin=http://127.0.0.1:8880/v1/checkin
	Run        string // rackflow.run=<workflow run ID>
	Token      string // rackflow.token=<MintToken(key, Node, Run)>
	ImageURL   string // rackflow.image=http://127.0.0.1:8880/exports/r01n01/image.raw
	Digest     string // rackflow.digest=sha256:<64 lower-case hex>
}

// Kernel command-line keys of AgentArgs.
const (
	ArgNode    = "rackflow.node"
	ArgCheckIn = "rackflow.checkin"
	ArgRun     = "rackflow.run"
	ArgToken   = "rackflow.token"
	ArgImage   = "rackflow.image"
	ArgDigest  = "rackflow.digest"
)

// ErrAgentArgs is wrapped by ParseAgentArgs and AgentArgs.Validate errors;
// the message names the missing or invalid key.
var ErrAgentArgs = errors.New("agent arguments")

var digestRE = regexp.MustCompile(`^sha256:[0-9a-f]{64}$`)

// Encode returns the six words "rackflow.node=…", "rackflow.checkin=…",
// "rackflow.run=…", "rackflow.token=…", "rackflow.image=…",
// "rackflow.digest=…" in that order. It does not validate; call Validate
// first when the values come from outside.
func (a AgentArgs) Encode() []string {
	return []string{
		ArgNode + "=" + a.Node,
		ArgCheckIn + "=" + a.CheckInURL,
		ArgRun + "=" + a.Run,
		ArgToken + "=" + a.Token,
		ArgImage + "=" + a.ImageURL,
		ArgDigest + "=" + a.Digest,
	}
}

// Validate checks every field: Node a valid name, CheckInURL and ImageURL
// absolute http(s) URLs, Run and Token non-empty words, Digest
// "sha256:<64 lower-case hex>". Errors wrap ErrAgentArgs and name the key.
func (a AgentArgs) Validate() error {
	if a.Node == "" {
		return missingArg(ArgNode)
	}
	if err := ValidName(a.Node); err != nil {
		return invalidArg(ArgNode, err)
	}
	for _, f := range []struct{ key, val string }{{ArgCheckIn, a.CheckInURL}, {ArgImage, a.ImageURL}} {
		if f.val == "" {
			return missingArg(f.key)
		}
		if err := validHTTPURL(f.val); err != nil {
			return invalidArg(f.key, err)
		}
	}
	for _, f := range []struct{ key, val string }{{ArgRun, a.Run}, {ArgToken, a.Token}} {
		if f.val == "" {
			return missingArg(f.key)
		}
		if err := validWord(f.val); err != nil {
			return invalidArg(f.key, err)
		}
	}
	if a.Digest == "" {
		return missingArg(ArgDigest)
	}
	if !digestRE.MatchString(a.Digest) {
		return invalidArg(ArgDigest, errors.New(`want "sha256:<64 lower-case hex>"`))
	}
	return nil
}

// ParseAgentArgs reads the rackflow.* words from a kernel command line split
// into words (e.g. strings.Fields of /proc/cmdline), ignoring every other
// word; when a key repeats, the last value wins (as with the kernel). The
// result is validated: errors wrap ErrAgentArgs and name the first missing
// or invalid key.
func ParseAgentArgs(words []string) (AgentArgs, error) {
	var a AgentArgs
	fields := map[string]*string{
		ArgNode:    &a.Node,
		ArgCheckIn: &a.CheckInURL,
		ArgRun:     &a.Run,
		ArgToken:   &a.Token,
		ArgImage:   &a.ImageURL,
		ArgDigest:  &a.Digest,
	}
	for _, w := range words {
		key, val, ok := strings.Cut(w, "=")
		if !ok {
			continue
		}
		if dst, known := fields[key]; known {
			*dst = val
		}
	}
	if err := a.Validate(); err != nil {
		return AgentArgs{}, err
	}
	return a, nil
}

func missingArg(key string) error {
	return fmt.Errorf("%w: missing %s", ErrAgentArgs, key)
}

func invalidArg(key string, err error) error {
	return fmt.Errorf("%w: invalid %s: %w", ErrAgentArgs, key, err)
}

func validHTTPURL(s string) error {
	if err := validWord(s); err != nil {
		return err
	}
	u, err := url.Parse(s)
	if err != nil {
		return err
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%q is not an absolute http(s) URL", s)
	}
	return nil
}
