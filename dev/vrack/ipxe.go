package vrack

import (
	"bufio"
	"fmt"
	"net/url"
	"strings"
)

// ipxeScript is what the emulated iPXE makes of a script.
type ipxeScript struct {
	exit    bool     // "exit": leave iPXE, boot the local disk
	kernel  string   // absolute URL
	args    []string // kernel command line words
	initrds []string // absolute URLs
}

// ipxeIgnored are commands the emulated iPXE accepts and skips.
var ipxeIgnored = map[string]bool{"echo": true, "dhcp": true, "ifopen": true, "ifconf": true, "sleep": true, "prompt": true}

// parseIPXE interprets an iPXE script fetched from base: the "#!ipxe" magic
// line, then "kernel URL args…", "initrd URL", "boot" (which ends the
// script), "exit", comments and the commands of ipxeIgnored. Relative URLs
// resolve against base; options "--name=value" / "--flag" before a URL are
// skipped. Anything else is an error, as is a script that ends without
// "boot" or "exit", or "boot" without "kernel".
func parseIPXE(base *url.URL, body string) (ipxeScript, error) {
	var s ipxeScript
	sc := bufio.NewScanner(strings.NewReader(body))
	line := 0
	magic := false
	for sc.Scan() {
		line++
		text := strings.TrimSpace(sc.Text())
		if !magic {
			if text == "" {
				continue
			}
			if text != "#!ipxe" {
				return s, fmt.Errorf("script line %d: %q, want the #!ipxe magic", line, text)
			}
			magic = true
			continue
		}
		if text == "" || strings.HasPrefix(text, "#") || strings.HasPrefix(text, ":") {
			continue
		}
		words := strings.Fields(text)
		cmd, rest := words[0], skipOptions(words[1:])
		switch {
		case cmd == "kernel" || cmd == "initrd":
			if len(rest) == 0 {
				return s, fmt.Errorf("script line %d: %s without a URL", line, cmd)
			}
			u, err := base.Parse(rest[0])
			if err != nil {
				return s, fmt.Errorf("script line %d: %s URL %q: %w", line, cmd, rest[0], err)
			}
			if cmd == "kernel" {
				s.kernel, s.args = u.String(), rest[1:]
			} else {
				s.initrds = append(s.initrds, u.String())
			}
		case cmd == "boot":
			if s.kernel == "" {
				return s, fmt.Errorf("script line %d: boot without kernel", line)
			}
			return s, nil
		case cmd == "exit":
			s.exit = true
			return s, nil
		case ipxeIgnored[cmd]:
		default:
			return s, fmt.Errorf("script line %d: unsupported iPXE command %q", line, cmd)
		}
	}
	if err := sc.Err(); err != nil {
		return s, err
	}
	if !magic {
		return s, fmt.Errorf("empty script")
	}
	return s, fmt.Errorf("script ended without boot or exit")
}

// skipOptions drops leading "--option[=value]" words.
func skipOptions(words []string) []string {
	for len(words) > 0 && strings.HasPrefix(words[0], "--") {
		words = words[1:]
	}
	return words
}
