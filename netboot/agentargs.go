package netboot

import (
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"
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

	// Swarm transport (package netboot/swarm), all optional: with
	// TorrentURL and InfoHash the agent downloads through BitTorrent with
	// ImageURL as the web seed; without them, over plain HTTP.
	TorrentURL string        // rackflow.torrent=http://127.0.0.1:8880/torrents/r01n01/<run>.torrent
	InfoHash   string        // rackflow.infohash=<40 lower-case hex>: the agent refuses a .torrent with another
	SeedFor    time.Duration // rackflow.seedfor=10m0s: keep seeding this long after checking in (0: stop at once)
	UploadRate int64         // rackflow.uploadrate=<bytes/s> the node sends to peers at most (0: unlimited)
}

// Kernel command-line keys of AgentArgs.
const (
	ArgNode    = "rackflow.node"
	ArgCheckIn = "rackflow.checkin"
	ArgRun     = "rackflow.run"
	ArgToken   = "rackflow.token"
	ArgImage   = "rackflow.image"
	ArgDigest  = "rackflow.digest"

	ArgTorrent  = "rackflow.torrent"
	ArgInfoHash = "rackflow.infohash"
	ArgSeedFor  = "rackflow.seedfor"
	ArgUpload   = "rackflow.uploadrate"
)

// ErrAgentArgs is wrapped by ParseAgentArgs and AgentArgs.Validate errors;
// the message names the missing or invalid key.
var ErrAgentArgs = errors.New("agent arguments")

var (
	digestRE   = regexp.MustCompile(`^sha256:[0-9a-f]{64}$`)
	infoHashRE = regexp.MustCompile(`^[0-9a-f]{40}$`)
)

// Encode returns the six words "rackflow.node=…", "rackflow.checkin=…",
// "rackflow.run=…", "rackflow.token=…", "rackflow.image=…",
// "rackflow.digest=…" in that order, then "rackflow.torrent=…",
// "rackflow.infohash=…", "rackflow.seedfor=…" and "rackflow.uploadrate=…"
// when TorrentURL is set. It
// does not validate; call Validate first when the values come from outside.
func (a AgentArgs) Encode() []string {
	words := []string{
		ArgNode + "=" + a.Node,
		ArgCheckIn + "=" + a.CheckInURL,
		ArgRun + "=" + a.Run,
		ArgToken + "=" + a.Token,
		ArgImage + "=" + a.ImageURL,
		ArgDigest + "=" + a.Digest,
	}
	if a.TorrentURL != "" {
		words = append(words, ArgTorrent+"="+a.TorrentURL, ArgInfoHash+"="+a.InfoHash, ArgSeedFor+"="+a.SeedFor.String(),
			ArgUpload+"="+strconv.FormatInt(a.UploadRate, 10))
	}
	return words
}

// Validate checks every field: Node a valid name, CheckInURL and ImageURL
// absolute http(s) URLs, Run and Token non-empty words, Digest
// "sha256:<64 lower-case hex>"; TorrentURL and InfoHash both empty, or an
// absolute http(s) URL and 40 lower-case hex digits; SeedFor and UploadRate
// not negative.
// Errors wrap ErrAgentArgs and name the key.
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
	return a.validateSwarm()
}

func (a AgentArgs) validateSwarm() error {
	switch {
	case a.TorrentURL == "" && a.InfoHash == "":
	case a.TorrentURL == "":
		return missingArg(ArgTorrent)
	case a.InfoHash == "":
		return missingArg(ArgInfoHash)
	default:
		if err := validHTTPURL(a.TorrentURL); err != nil {
			return invalidArg(ArgTorrent, err)
		}
		if !infoHashRE.MatchString(a.InfoHash) {
			return invalidArg(ArgInfoHash, errors.New("want 40 lower-case hex digits"))
		}
	}
	if a.SeedFor < 0 {
		return invalidArg(ArgSeedFor, errors.New("negative duration"))
	}
	if a.UploadRate < 0 {
		return invalidArg(ArgUpload, errors.New("negative rate"))
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
	seedFor, upload := "", ""
	fields := map[string]*string{
		ArgNode:     &a.Node,
		ArgCheckIn:  &a.CheckInURL,
		ArgRun:      &a.Run,
		ArgToken:    &a.Token,
		ArgImage:    &a.ImageURL,
		ArgDigest:   &a.Digest,
		ArgTorrent:  &a.TorrentURL,
		ArgInfoHash: &a.InfoHash,
		ArgSeedFor:  &seedFor,
		ArgUpload:   &upload,
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
	if seedFor != "" {
		d, err := time.ParseDuration(seedFor)
		if err != nil {
			return AgentArgs{}, invalidArg(ArgSeedFor, err)
		}
		a.SeedFor = d
	}
	if upload != "" {
		n, err := strconv.ParseInt(upload, 10, 64)
		if err != nil {
			return AgentArgs{}, invalidArg(ArgUpload, err)
		}
		a.UploadRate = n
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
