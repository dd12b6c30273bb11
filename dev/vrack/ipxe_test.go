package vrack

import (
	"net/url"
	"slices"
	"strings"
	"testing"
)

func TestParseIPXE(t *testing.T) {
	base, _ := url.Parse("http://127.0.0.1:8880/boot/02:52:46:01:00:01.ipxe")
	tests := []struct {
		name    string
		script  string
		want    ipxeScript
		wantErr string
	}{
		{
			name:   "install",
			script: "#!ipxe\nkernel http://127.0.0.1:8880/artifacts/vmlinuz rackflow.node=r01n01 console=ttyS0\ninitrd http://127.0.0.1:8880/artifacts/initrd.img\nboot\n",
			want: ipxeScript{kernel: "http://127.0.0.1:8880/artifacts/vmlinuz", args: []string{"rackflow.node=r01n01", "console=ttyS0"},
				initrds: []string{"http://127.0.0.1:8880/artifacts/initrd.img"}},
		},
		{
			name:   "relative URLs, options, comments, ignored commands, CRLF",
			script: "\r\n#!ipxe\r\n# comment\r\necho booting\r\n:retry\r\nkernel --name=k /artifacts/vmlinuz a=1\r\ninitrd --name=i ../artifacts/initrd.img\r\nboot\r\nthis is never read\r\n",
			want: ipxeScript{kernel: "http://127.0.0.1:8880/artifacts/vmlinuz", args: []string{"a=1"},
				initrds: []string{"http://127.0.0.1:8880/artifacts/initrd.img"}},
		},
		{name: "local", script: "#!ipxe\nexit\n", want: ipxeScript{exit: true}},
		{name: "no magic", script: "kernel http://x/k\nboot\n", wantErr: "magic"},
		{name: "empty", script: "", wantErr: "empty script"},
		{name: "boot without kernel", script: "#!ipxe\nboot\n", wantErr: "boot without kernel"},
		{name: "kernel without URL", script: "#!ipxe\nkernel\nboot\n", wantErr: "without a URL"},
		{name: "no boot", script: "#!ipxe\nkernel http://x/k\n", wantErr: "without boot or exit"},
		{name: "unknown command", script: "#!ipxe\nsanboot iscsi:x\n", wantErr: `unsupported iPXE command "sanboot"`},
		{name: "bad URL", script: "#!ipxe\nkernel http://[::1\nboot\n", wantErr: "kernel URL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseIPXE(base, tt.script)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.exit != tt.want.exit || got.kernel != tt.want.kernel || !slices.Equal(got.args, tt.want.args) || !slices.Equal(got.initrds, tt.want.initrds) {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}
