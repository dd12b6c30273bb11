package bmc

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/stmcginnis/gofish/common"
)

func TestSplitAddress(t *testing.T) {
	tests := []struct {
		addr, driver     string
		wantHost, wantPt string
		wantErr          bool
	}{
		{"10.0.0.5", DriverRedfish, "10.0.0.5", "443", false},
		{"10.0.0.5", DriverIPMI, "10.0.0.5", "623", false},
		{"127.1.0.5:8443", DriverRedfish, "127.1.0.5", "8443", false},
		{"bmc-r01n01.example", DriverIPMI, "bmc-r01n01.example", "623", false},
		{"[fd00::5]:8443", DriverRedfish, "fd00::5", "8443", false},
		{"fd00::5", DriverRedfish, "fd00::5", "443", false},
		{"", DriverRedfish, "", "", true},
		{"10.0.0.5:", DriverRedfish, "", "", true},
		{"http://x/", DriverRedfish, "", "", true},
	}
	for _, tt := range tests {
		h, p, err := splitAddress(tt.addr, tt.driver)
		if tt.wantErr {
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("splitAddress(%q) = %q, %q, %v; want ErrInvalid", tt.addr, h, p, err)
			}
			continue
		}
		if err != nil || h != tt.wantHost || p != tt.wantPt {
			t.Errorf("splitAddress(%q, %s) = %q, %q, %v; want %q, %q", tt.addr, tt.driver, h, p, err, tt.wantHost, tt.wantPt)
		}
	}
	if got := bracketV6("fd00::5"); got != "[fd00::5]" {
		t.Errorf("bracketV6 = %q", got)
	}
}

func TestNormalizePower(t *testing.T) {
	tests := []struct {
		raw, want string
	}{
		{"On", "on"}, {"Off", "off"}, {"PoweringOn", "on"}, {"PoweringOff", "off"},
		{"Chassis Power is on\n", "on"}, {"Chassis Power is off\n", "off"},
		{"Unable to Get Channel Cipher Suites\nChassis Power is on\n", "on"},
		{"Paused", ""}, {"", ""},
	}
	for _, tt := range tests {
		got, err := normalizePower(tt.raw)
		if got != tt.want || (tt.want == "") != (err != nil) {
			t.Errorf("normalizePower(%q) = %q, %v; want %q", tt.raw, got, err, tt.want)
		}
	}
}

func TestPowerActionMapping(t *testing.T) {
	tests := []struct {
		driver       string
		powerRemoval bool
		want         string
	}{
		{DriverRedfish, true, "reset"},  // Redfish PowerCycle
		{DriverRedfish, false, "cycle"}, // Redfish ForceRestart
		{DriverIPMI, true, "cycle"},     // chassis power cycle
		{DriverIPMI, false, "reset"},    // chassis power reset
	}
	for _, tt := range tests {
		c := &Client{driver: tt.driver}
		if got := c.powerAction(tt.powerRemoval); got != tt.want {
			t.Errorf("%s powerRemoval=%v: %q, want %q", tt.driver, tt.powerRemoval, got, tt.want)
		}
	}
}

func TestClassify(t *testing.T) {
	deadline, cancel := context.WithTimeout(context.Background(), 0)
	defer cancel()
	coll := common.NewCollectionError()
	coll.Failures["/redfish/v1/Systems/1"] = common.ConstructError(401, []byte(`{"error":{"code":"Base.1.8.NoValidSession"}}`))
	tests := []struct {
		name string
		ctx  context.Context
		err  error
		want error // nil: left unclassified
	}{
		{"redfish 401", context.Background(), fmt.Errorf("provider: gofish: %w", common.ConstructError(401, nil)), ErrAuth},
		{"redfish 403", context.Background(), common.ConstructError(403, nil), ErrAuth},
		{"redfish 401 in a collection", context.Background(), coll, ErrAuth},
		{"redfish 500", context.Background(), common.ConstructError(500, nil), nil},
		{"ipmi bad password", context.Background(), errors.New("exit status 1: Error: RAKP 2 HMAC is invalid\nError: Unable to establish IPMI v2 / RMCP+ session"), ErrAuth},
		{"ipmi bad user", context.Background(), errors.New("RAKP 2 message indicates an error : unauthorized name"), ErrAuth},
		{"ipmi no answer", context.Background(), errors.New("exit status 1: Error: Unable to establish IPMI v2 / RMCP+ session"), ErrUnreachable},
		{"deadline", context.Background(), context.DeadlineExceeded, ErrUnreachable},
		{"ctx expired", deadline, errors.New("signal: killed"), ErrUnreachable},
		{"other", context.Background(), errors.New("unknown power action"), nil},
	}
	for _, tt := range tests {
		got := classify(tt.ctx, tt.err)
		switch {
		case tt.want == nil && (errors.Is(got, ErrAuth) || errors.Is(got, ErrUnreachable)):
			t.Errorf("%s: classified as %v", tt.name, got)
		case tt.want != nil && !errors.Is(got, tt.want):
			t.Errorf("%s: %v, want %v", tt.name, got, tt.want)
		case !errors.Is(got, tt.err):
			t.Errorf("%s: original error lost from the chain: %v", tt.name, got)
		}
	}
}
