package main

import (
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// linePrefix starts every line the agent prints.
const linePrefix = "rackflow-agent: "

// console prints the agent's one-line step reports on the serial console.
type console struct {
	mu     sync.Mutex
	w      io.Writer
	uptime func() float64 // seconds since boot
}

// newConsole returns a console writing to w and stamping lines with the
// uptime read from uptimePath (see procUptime).
func newConsole(w io.Writer, uptimePath string) *console {
	return &console{w: w, uptime: procUptime(uptimePath, time.Now())}
}

// step prints "rackflow-agent: [<uptime>] <message>" on one line; newlines
// in the message become spaces so a log grep sees one line per step.
func (c *console) step(format string, args ...any) {
	msg := oneLine(fmt.Sprintf(format, args...))
	c.mu.Lock()
	defer c.mu.Unlock()
	fmt.Fprintf(c.w, "%s[%7.2f] %s\n", linePrefix, c.uptime(), msg)
}

// failed prints the "FAILED <reason>" step line for err.
func (c *console) failed(err error) {
	c.step("FAILED %s", err)
}

// finish prints the last line, "rackflow-agent: done" or
// "rackflow-agent: failed", without an uptime stamp.
func (c *console) finish(ok bool) {
	word := "failed"
	if ok {
		word = "done"
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	fmt.Fprintf(c.w, "%s%s\n", linePrefix, word)
}

// oneLine replaces line breaks and tabs with spaces and trims the result.
func oneLine(s string) string {
	return strings.TrimSpace(strings.Map(func(r rune) rune {
		switch r {
		case '\n', '\r', '\t':
			return ' '
		}
		return r
	}, s))
}

// procUptime returns a function giving the seconds since boot from the
// first field of path (normally /proc/uptime). When path cannot be read or
// parsed it falls back to the seconds since start.
func procUptime(path string, start time.Time) func() float64 {
	return func() float64 {
		b, err := os.ReadFile(path)
		if err == nil {
			if f := strings.Fields(string(b)); len(f) > 0 {
				if v, err := strconv.ParseFloat(f[0], 64); err == nil && v >= 0 {
					return v
				}
			}
		}
		return time.Since(start).Seconds()
	}
}

// seconds formats d as seconds with two decimals, e.g. "0.41s".
func seconds(d time.Duration) string {
	return fmt.Sprintf("%.2fs", d.Seconds())
}

// rateMBps is n bytes over d in MB/s (10^6 bytes), 0 when d is not positive.
func rateMBps(n int64, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / 1e6 / d.Seconds()
}

// humanBytes formats n in binary units with one decimal, e.g. "4.0 GiB".
func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 5; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
