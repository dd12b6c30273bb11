// Command rackflow is the operator's CLI: it runs the embedded default
// (`rackflow dev`), the worker and the netboot service, and starts and
// inspects operations on nodes.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/urfave/cli/v2"
)

// exitUsage is the exit status of a bad flag or argument.
const exitUsage = 2

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := app().RunContext(ctx, os.Args); err != nil {
		var exit cli.ExitCoder
		if errors.As(err, &exit) {
			if msg := exit.Error(); msg != "" {
				fmt.Fprintln(os.Stderr, "rackflow:", msg)
			}
			os.Exit(exit.ExitCode())
		}
		fmt.Fprintln(os.Stderr, "rackflow:", err)
		os.Exit(1)
	}
}

func app() *cli.App {
	a := &cli.App{
		Name:  "rackflow",
		Usage: "provision bare-metal clusters with durable workflows",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "temporal-address", Value: "127.0.0.1:7233", EnvVars: []string{"RACKFLOW_TEMPORAL_ADDRESS"}, Usage: "Temporal frontend host:port"},
			&cli.StringFlag{Name: "namespace", Value: "default", EnvVars: []string{"RACKFLOW_NAMESPACE"}, Usage: "Temporal namespace"},
			&cli.StringFlag{Name: "log-level", Value: "warn", Usage: "debug, info, warn or error (logs go to stderr)"},
			&cli.BoolFlag{Name: "json", Usage: "print tabular output as JSON"},
		},
		Commands: []*cli.Command{
			devCommand(), workerCommand(), netbootCommand(),
			provisionCommand(), statusCommand(), imagesCommand(),
			rolloutCommand(),
			ldapCommand(), checkoutCommand(), releaseCommand(), ownersCommand(),
			reinstallCommand(), drainedCommand(), identifyCommand(),
			discoveredCommand(), enrolCommand(), leasesCommand(),
		},
		OnUsageError:   usageError,
		ExitErrHandler: func(*cli.Context, error) {},
	}
	for _, c := range a.Commands {
		c.OnUsageError = usageError
	}
	return a
}

// usageError prints the command's usage and exits with status 2.
func usageError(c *cli.Context, err error, _ bool) error {
	_ = cli.ShowSubcommandHelp(c)
	return cli.Exit(err.Error(), exitUsage)
}

// badUsage reports a wrong argument the flag parser cannot see.
func badUsage(c *cli.Context, format string, args ...any) error {
	return usageError(c, fmt.Errorf(format, args...), true)
}

// requireFlags reports the first of names that was not set as a usage error.
func requireFlags(c *cli.Context, names ...string) error {
	for _, n := range names {
		if !c.IsSet(n) {
			return badUsage(c, "flag --%s is required", n)
		}
	}
	return nil
}

func logger(c *cli.Context) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(c.String("log-level"))); err != nil {
		return nil, badUsage(c, "--log-level: %v", err)
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level})), nil
}
