package devtemporal

import (
	"strings"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
)

func TestResolve(t *testing.T) {
	tests := []struct {
		name    string
		cfg     Config
		wantErr string
		check   func(t *testing.T, r resolved)
	}{
		{
			name: "zero value gets defaults and no UI",
			check: func(t *testing.T, r resolved) {
				if r.frontendIP != "127.0.0.1" || r.frontendPort != 7233 {
					t.Errorf("frontend = %s:%d, want 127.0.0.1:7233", r.frontendIP, r.frontendPort)
				}
				if r.uiIP != "" || r.uiPort != 0 {
					t.Errorf("UI = %q:%d, want none", r.uiIP, r.uiPort)
				}
				if r.Namespace != DefaultNamespace {
					t.Errorf("namespace = %q, want %q", r.Namespace, DefaultNamespace)
				}
				if r.Retention != 30*24*time.Hour {
					t.Errorf("retention = %s, want 720h", r.Retention)
				}
				if r.Logger == nil {
					t.Error("logger is nil")
				}
			},
		},
		{
			name: "localhost becomes 127.0.0.1",
			cfg:  Config{FrontendAddr: "localhost:17233", UIAddr: "localhost:18233"},
			check: func(t *testing.T, r resolved) {
				if r.frontendIP != "127.0.0.1" || r.frontendPort != 17233 || r.uiIP != "127.0.0.1" || r.uiPort != 18233 {
					t.Errorf("got frontend %s:%d UI %s:%d", r.frontendIP, r.frontendPort, r.uiIP, r.uiPort)
				}
			},
		},
		{
			name: "IPv6 loopback and port 0",
			cfg:  Config{FrontendAddr: "[::1]:0"},
			check: func(t *testing.T, r resolved) {
				if r.frontendIP != "::1" || r.frontendPort != 0 {
					t.Errorf("got %s:%d", r.frontendIP, r.frontendPort)
				}
			},
		},
		{name: "host name", cfg: Config{FrontendAddr: "temporal.example:7233"}, wantErr: "must be an IP address"},
		{name: "unspecified IP", cfg: Config{FrontendAddr: "0.0.0.0:7233"}, wantErr: "bind a specific IP"},
		{name: "missing port", cfg: Config{FrontendAddr: "127.0.0.1"}, wantErr: "frontend address"},
		{name: "bad port", cfg: Config{UIAddr: "127.0.0.1:99999"}, wantErr: "invalid port"},
		{name: "short retention", cfg: Config{Retention: time.Hour}, wantErr: "below the minimum"},
		{
			name:    "unspecified attribute type",
			cfg:     Config{SearchAttributes: map[string]enumspb.IndexedValueType{"RackflowNode": enumspb.INDEXED_VALUE_TYPE_UNSPECIFIED}},
			wantErr: `"RackflowNode" has no valid type`,
		},
		{
			name:    "empty attribute name",
			cfg:     Config{SearchAttributes: map[string]enumspb.IndexedValueType{"": enumspb.INDEXED_VALUE_TYPE_KEYWORD}},
			wantErr: "empty name",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := resolve(tt.cfg)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("resolve() error = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("resolve() error = %v", err)
			}
			tt.check(t, r)
		})
	}
}
