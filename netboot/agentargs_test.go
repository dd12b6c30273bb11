package netboot

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

func validAgentArgs() AgentArgs {
	return AgentArgs{
		Node:       "r01n01",
		CheckInURL: "http://127.0.0.1:8880/v1/checkin",
		Run:        "0195e4c2-7f1a-7cc0-9a51-3b7e2a1d9f00",
		Token:      MintToken(testKey, "r01n01", "0195e4c2-7f1a-7cc0-9a51-3b7e2a1d9f00"),
		ImageURL:   "http://127.0.0.1:8880/exports/r01n01/image.raw",
		Digest:     "sha256:" + strings.Repeat("ab", 32),
	}
}

func TestAgentArgsRoundTrip(t *testing.T) {
	a := validAgentArgs()
	words := a.Encode()
	if len(words) != 6 || words[0] != "rackflow.node=r01n01" {
		t.Fatalf("Encode = %q", words)
	}
	cmdline := append([]string{"BOOT_IMAGE=/vmlinuz", "console=ttyS0,115200", "quiet", "rackflow.unknown=1"}, words...)
	cmdline = append(cmdline, "ro")
	got, err := ParseAgentArgs(cmdline)
	if err != nil {
		t.Fatalf("ParseAgentArgs: %v", err)
	}
	if !reflect.DeepEqual(got, a) {
		t.Fatalf("round trip = %+v, want %+v", got, a)
	}
}

func TestAgentArgsSwarmRoundTrip(t *testing.T) {
	a := validAgentArgs()
	a.TorrentURL = "http://127.0.0.1:8880/torrents/r01n01/run-1.torrent"
	a.InfoHash = strings.Repeat("0f", 20)
	a.SeedFor = 90 * time.Second
	a.UploadRate = 12 << 20
	words := a.Encode()
	if len(words) != 10 || words[8] != "rackflow.seedfor=1m30s" || words[9] != "rackflow.uploadrate=12582912" {
		t.Fatalf("Encode = %q", words)
	}
	got, err := ParseAgentArgs(words)
	if err != nil {
		t.Fatalf("ParseAgentArgs: %v", err)
	}
	if !reflect.DeepEqual(got, a) {
		t.Fatalf("round trip = %+v, want %+v", got, a)
	}
	for _, tc := range []struct {
		name  string
		extra []string
		key   string
	}{
		{"torrent without info hash", []string{"rackflow.torrent=http://x/t.torrent"}, ArgInfoHash},
		{"info hash without torrent", []string{"rackflow.infohash=" + strings.Repeat("0f", 20)}, ArgTorrent},
		{"upper-case info hash", []string{"rackflow.torrent=http://x/t", "rackflow.infohash=" + strings.Repeat("0F", 20)}, ArgInfoHash},
		{"short info hash", []string{"rackflow.torrent=http://x/t", "rackflow.infohash=abcd"}, ArgInfoHash},
		{"ftp torrent", []string{"rackflow.torrent=ftp://x/t", "rackflow.infohash=" + strings.Repeat("0f", 20)}, ArgTorrent},
		{"bad seedfor", []string{"rackflow.torrent=http://x/t", "rackflow.infohash=" + strings.Repeat("0f", 20), "rackflow.seedfor=soon"}, ArgSeedFor},
		{"bad uploadrate", []string{"rackflow.torrent=http://x/t", "rackflow.infohash=" + strings.Repeat("0f", 20), "rackflow.uploadrate=fast"}, ArgUpload},
		{"negative uploadrate", []string{"rackflow.torrent=http://x/t", "rackflow.infohash=" + strings.Repeat("0f", 20), "rackflow.uploadrate=-5"}, ArgUpload},
		{"negative seedfor", []string{"rackflow.torrent=http://x/t", "rackflow.infohash=" + strings.Repeat("0f", 20), "rackflow.seedfor=-1s"}, ArgSeedFor},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseAgentArgs(append(validAgentArgs().Encode(), tc.extra...))
			if !errors.Is(err, ErrAgentArgs) || !strings.Contains(err.Error(), tc.key) {
				t.Fatalf("ParseAgentArgs = %v, want an ErrAgentArgs naming %s", err, tc.key)
			}
		})
	}
}

func TestParseAgentArgsLastWins(t *testing.T) {
	a := validAgentArgs()
	words := append(a.Encode(), "rackflow.run=run-2")
	got, err := ParseAgentArgs(words)
	if err != nil {
		t.Fatal(err)
	}
	if got.Run != "run-2" {
		t.Fatalf("Run = %q, want the last value run-2", got.Run)
	}
}

func TestParseAgentArgsErrors(t *testing.T) {
	drop := func(key string) []string {
		var out []string
		for _, w := range validAgentArgs().Encode() {
			if !strings.HasPrefix(w, key+"=") {
				out = append(out, w)
			}
		}
		return out
	}
	set := func(key, val string) []string {
		return append(validAgentArgs().Encode(), key+"="+val)
	}
	tests := []struct {
		name    string
		words   []string
		wantKey string
	}{
		{"missing node", drop(ArgNode), ArgNode},
		{"missing checkin", drop(ArgCheckIn), ArgCheckIn},
		{"missing run", drop(ArgRun), ArgRun},
		{"missing token", drop(ArgToken), ArgToken},
		{"missing image", drop(ArgImage), ArgImage},
		{"missing digest", drop(ArgDigest), ArgDigest},
		{"empty value", set(ArgRun, ""), ArgRun},
		{"nothing at all", nil, ArgNode},
		{"bad node", set(ArgNode, "R01/N01"), ArgNode},
		{"relative checkin URL", set(ArgCheckIn, "/v1/checkin"), ArgCheckIn},
		{"ftp image URL", set(ArgImage, "ftp://host/image.raw"), ArgImage},
		{"digest without prefix", set(ArgDigest, strings.Repeat("ab", 32)), ArgDigest},
		{"short digest", set(ArgDigest, "sha256:abcd"), ArgDigest},
		{"upper-case digest", set(ArgDigest, "sha256:"+strings.Repeat("AB", 32)), ArgDigest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseAgentArgs(tt.words)
			if !errors.Is(err, ErrAgentArgs) {
				t.Fatalf("error = %v, want ErrAgentArgs", err)
			}
			if !strings.Contains(err.Error(), tt.wantKey) {
				t.Fatalf("error %q does not name %s", err, tt.wantKey)
			}
		})
	}
}
