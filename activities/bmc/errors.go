package bmc

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"strings"
	"syscall"

	"github.com/stmcginnis/gofish/common"
)

// classify wraps err with ErrAuth or ErrUnreachable when it shows that the
// BMC refused the credentials or did not answer; other errors are returned
// as they are.
func classify(ctx context.Context, err error) error {
	switch {
	case err == nil:
		return nil
	case isAuth(err):
		return fmt.Errorf("%w: %w", ErrAuth, err)
	case isUnreachable(ctx, err):
		return fmt.Errorf("%w: %w", ErrUnreachable, err)
	}
	return err
}

// ipmitool's words for a BMC that answered and refused the credentials
// (lanplus RAKP exchange, lan session activation).
var ipmiAuthMarkers = []string{
	"rakp 2 hmac is invalid",
	"rakp 2 message indicates an error",
	"rakp 4 message has invalid integrity check value",
	"rakp 4 message indicates an error",
	"unauthorized name",
	"invalid user name",
	"password verification",
	"insufficient privilege level",
	"requested privilege level exceeds limit",
}

// ipmitool's words for a BMC that did not answer (checked after the auth
// markers: ipmitool prints the generic session failure in both cases).
var ipmiUnreachableMarkers = []string{
	"get auth capabilities error",
	"unable to establish ipmi v2 / rmcp+ session",
	"unable to establish lan session",
	"no response from remote controller",
	"no route to host",
	"address lookup for",
}

func isAuth(err error) bool {
	if redfishStatus(err, 401) || redfishStatus(err, 403) {
		return true
	}
	return containsAny(strings.ToLower(err.Error()), ipmiAuthMarkers)
}

func isUnreachable(ctx context.Context, err error) bool {
	var netErr net.Error
	var opErr *net.OpError
	var dnsErr *net.DNSError
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.Is(ctx.Err(), context.DeadlineExceeded):
		return true
	case errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET),
		errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH):
		return true
	case errors.As(err, &opErr), errors.As(err, &dnsErr):
		return true
	case errors.As(err, &netErr) && netErr.Timeout():
		return true
	}
	return containsAny(strings.ToLower(err.Error()), ipmiUnreachableMarkers)
}

// redfishStatus reports whether err carries a Redfish error response with
// the given HTTP status, directly or inside a gofish collection error.
func redfishStatus(err error, status int) bool {
	var rfErr *common.Error
	if errors.As(err, &rfErr) && rfErr.HTTPReturnedStatusCode == status {
		return true
	}
	var collErr *common.CollectionError
	if errors.As(err, &collErr) {
		for _, e := range collErr.Failures {
			if redfishStatus(e, status) {
				return true
			}
		}
	}
	return false
}

func containsAny(s string, subs []string) bool {
	for _, sub := range subs {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}

// diagnoseIPMISession tells a refused password from a silent BMC after a
// failed lanplus session. Without -v, ipmitool prints the same "Unable to
// establish IPMI v2 / RMCP+ session" for both (bmclib runs it so), and the
// error is classified ErrUnreachable. One short verbose attempt (one try,
// 1 s timeout) shows the RAKP exchange: a BMC that answered and refused the
// credentials turns err into ErrAuth; anything else leaves err as it is.
func diagnoseIPMISession(ctx context.Context, host, port string, cfg Config, err error) error {
	ipmitool, lookErr := exec.LookPath("ipmitool")
	if lookErr != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, ipmitool, "-v", "-I", "lanplus", "-C", IPMICipherSuite, "-N", "1", "-R", "1",
		"-H", host, "-p", port, "-U", cfg.Username, "-E", "chassis", "power", "status")
	cmd.Env = []string{"IPMITOOL_PASSWORD=" + cfg.Password}
	out, runErr := cmd.CombinedOutput()
	if runErr == nil || !containsAny(strings.ToLower(string(out)), ipmiAuthMarkers) {
		return err
	}
	return fmt.Errorf("%w: the BMC refused the credentials of user %q (ipmitool -v: RAKP exchange failed)", ErrAuth, cfg.Username)
}
