package devtemporal

import (
	"context"
	"fmt"
	"strings"

	uiserver "github.com/temporalio/ui-server/v2/server"
	uiconfig "github.com/temporalio/ui-server/v2/server/config"
	uiserveroptions "github.com/temporalio/ui-server/v2/server/server_options"
)

// startUI serves the Web UI on uiAddr, talking gRPC to frontendAddr, and
// returns once it accepts connections. The UI server exits the process when
// it cannot bind, so the caller must have checked uiAddr just before; this
// re-checks it, which leaves only a tiny race window.
func startUI(ctx context.Context, r resolved, uiAddr, frontendAddr string, uiPort int) (*uiserver.Server, error) {
	if err := checkPortFree("UI", r.uiIP, uiPort); err != nil {
		return nil, err
	}
	ui := uiserver.NewServer(uiserveroptions.WithConfigProvider(&uiconfig.Config{
		Host:                bracketIPv6(r.uiIP), // the UI formats "%s:%d"
		Port:                uiPort,
		TemporalGRPCAddress: frontendAddr,
		EnableUI:            true,
		DefaultNamespace:    r.Namespace,
		DisableNewsFetch:    true,
		// Plain HTTP on loopback: the CSRF cookie must not be Secure.
		CORS:     uiconfig.CORS{CookieInsecure: true},
		HideLogs: true,
	}))
	done := make(chan struct{})
	go func() {
		defer close(done)
		// Start returns nil once Stop closes the server; on a bind error it
		// exits the process (hence the port checks).
		_ = ui.Start()
	}()
	if err := waitListening(ctx, uiAddr, done); err != nil {
		ui.Stop()
		return nil, fmt.Errorf("devtemporal: UI: %w", err)
	}
	return ui, nil
}

func bracketIPv6(ip string) string {
	if strings.Contains(ip, ":") {
		return "[" + ip + "]"
	}
	return ip
}
