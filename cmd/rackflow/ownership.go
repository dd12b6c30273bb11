package main

import (
	"fmt"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/rackflow/rackflow/activities/inventory"
	"github.com/rackflow/rackflow/activities/ownership"
	"github.com/rackflow/rackflow/starter"
	"github.com/rackflow/rackflow/workflows"
)

// passwordEnv holds the LDAP password when no --ldap-password-file is given.
// There is deliberately no password flag: argv shows in process lists.
const passwordEnv = "RACKFLOW_LDAP_PASSWORD"

// ldapFlags are the connection flags of every ownership command.
func ldapFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "ldap-url", EnvVars: []string{"RACKFLOW_LDAP_URL"}, Usage: "directory URL, ldap://host:port/ or ldaps://…"},
		&cli.StringFlag{Name: "ldap-base", EnvVars: []string{"RACKFLOW_LDAP_BASE"}, Usage: "base DN holding ou=servers"},
		&cli.StringFlag{Name: "ldap-bind-dn", EnvVars: []string{"RACKFLOW_LDAP_BIND_DN"}, Usage: "your DN (the owner value a checkout writes)"},
		&cli.StringFlag{Name: "ldap-password-file", EnvVars: []string{"RACKFLOW_LDAP_PASSWORD_FILE"}, Usage: "file holding the bind password (default: env " + passwordEnv + ")"},
	}
}

// ldapConfig reads the connection flags and the password; a missing flag or
// password is a usage error.
func ldapConfig(c *cli.Context) (ownership.Config, error) {
	if err := requireFlags(c, "ldap-url", "ldap-base", "ldap-bind-dn"); err != nil {
		return ownership.Config{}, err
	}
	cfg := ownership.Config{URL: c.String("ldap-url"), BaseDN: c.String("ldap-base"), BindDN: c.String("ldap-bind-dn")}
	if f := c.String("ldap-password-file"); f != "" {
		b, err := os.ReadFile(f)
		if err != nil {
			return cfg, fmt.Errorf("ldap password: %w", err)
		}
		cfg.Password = strings.TrimRight(string(b), "\r\n")
	} else {
		cfg.Password = os.Getenv(passwordEnv)
	}
	if cfg.Password == "" {
		return cfg, badUsage(c, "no LDAP password: set --ldap-password-file or %s", passwordEnv)
	}
	return cfg, nil
}

func ldapDial(c *cli.Context) (*ownership.Client, error) {
	cfg, err := ldapConfig(c)
	if err != nil {
		return nil, err
	}
	return ownership.Dial(c.Context, cfg)
}

// nodeArgs returns the NODE… arguments (flags after them are applied, as
// elsewhere in the CLI), at least one unless optional; a bad name is a usage
// error. Call it before reading flags.
func nodeArgs(c *cli.Context, optional bool) ([]string, error) {
	nodes, err := positional(c)
	if err != nil {
		return nil, err
	}
	if len(nodes) == 0 && !optional {
		return nil, badUsage(c, "name at least one node")
	}
	for _, n := range nodes {
		if !ownership.ValidNode(n) {
			return nil, badUsage(c, "%q is not a valid node name ([a-z0-9][a-z0-9._-]*)", n)
		}
	}
	return nodes, nil
}

func ldapCommand() *cli.Command {
	return &cli.Command{
		Name:  "ldap",
		Usage: "manage the server entries of the ownership directory",
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return badUsage(c, "unknown ldap command %q", c.Args().First())
			}
			return cli.ShowSubcommandHelp(c)
		},
		Subcommands: []*cli.Command{{
			Name:         "sync",
			OnUsageError: usageError,
			Usage:        "create the server entry (groupOfNames cn=<node>,ou=servers,<base>) of every inventory node; as the admin",
			Flags:        append(ldapFlags(), inventoryFlag),
			Before: func(c *cli.Context) error {
				if c.Args().Len() > 0 {
					return badUsage(c, "unexpected argument %q", c.Args().First())
				}
				return requireFlags(c, "inventory")
			},
			Action: func(c *cli.Context) error {
				inv, err := inventory.Load(c.String("inventory"))
				if err != nil {
					return err
				}
				cl, err := ldapDial(c)
				if err != nil {
					return err
				}
				defer cl.Close()
				servers := make([]ownership.Server, len(inv.Nodes))
				for i, n := range inv.Nodes {
					servers[i] = ownership.Server{Node: n.Name, Description: fmt.Sprintf("rack %s slot %d", n.Rack, n.Slot)}
				}
				res, err := cl.Sync(c.Context, servers)
				if err != nil {
					return err
				}
				fmt.Fprintf(c.App.Writer, "%d created, %d updated, %d unchanged\n", len(res.Created), len(res.Updated), len(res.Unchanged))
				return nil
			},
		}},
	}
}

func checkoutCommand() *cli.Command {
	return &cli.Command{
		Name:      "checkout",
		Usage:     "become the owner of free nodes (atomic: of concurrent checkouts one wins); --for releases them when the time is up",
		ArgsUsage: "NODE…",
		Flags: append(ldapFlags(), &cli.DurationFlag{Name: "for",
			Usage: "maximum checkout duration: a CheckoutExpiry workflow (checkout/<node>) releases each node when it is over (power off, root destroyed, owner cleared); a new checkout --for replaces it, release cancels it"}),
		Action: func(c *cli.Context) error {
			// Flags after the nodes count: parse them before reading any.
			if _, err := nodeArgs(c, false); err != nil {
				return err
			}
			d := c.Duration("for")
			if c.IsSet("for") && d <= 0 {
				return badUsage(c, "--for %s: want a positive duration", d)
			}
			if !c.IsSet("for") {
				return eachNode(c, func(cl *ownership.Client, n string) (string, error) {
					return "checked out by " + cl.Me(), cl.Checkout(c.Context, n)
				})
			}
			return withClient(c, func(tc *starter.Client) error {
				return eachNode(c, func(cl *ownership.Client, n string) (string, error) {
					if err := cl.Checkout(c.Context, n); err != nil {
						return "", err
					}
					run, err := tc.StartCheckoutExpiry(c.Context, workflows.CheckoutExpiryInput{Node: n, User: cl.Me(), Duration: d})
					if err != nil {
						return "", fmt.Errorf("checked out, but the expiry timer did not start (release it yourself): %w", err)
					}
					return fmt.Sprintf("checked out by %s until %s (%s)", cl.Me(), time.Now().Add(d).Format(time.DateTime), run.WorkflowID), nil
				})
			})
		},
	}
}

func releaseCommand() *cli.Command {
	return &cli.Command{
		Name: "release",
		Usage: "return nodes to the pool: one Release workflow per node (power off or reference boot, boot profile local, export withdrawn, " +
			"root destroyed, your ownership cleared); --owner-only only clears your ownership, --force (admin) clears anyone's",
		ArgsUsage: "NODE…",
		Flags: append(ldapFlags(),
			&cli.BoolFlag{Name: "owner-only", Usage: "only give up your ownership in the directory (the node keeps its root and power)"},
			&cli.BoolFlag{Name: "force", Usage: "admin: clear the owner in the directory whoever it is (implies --owner-only)"},
			&cli.StringFlag{Name: "policy", Value: workflows.ReleasePowerOff, Usage: "power-off or reference (power-cycle into the local disk)"},
			&cli.BoolFlag{Name: "wait", Usage: "wait for every node and exit 1 if any failed"},
			userFlag(),
		),
		Action: func(c *cli.Context) error {
			if _, err := nodeArgs(c, false); err != nil {
				return err
			}
			if c.Bool("owner-only") || c.Bool("force") {
				return eachNode(c, func(cl *ownership.Client, n string) (string, error) {
					if !c.Bool("force") {
						return "released", cl.Release(c.Context, n)
					}
					prev, err := cl.ForceRelease(c.Context, n)
					if prev == "" {
						return "free", err
					}
					return "released (was owned by " + prev + ")", err
				})
			}
			if p := c.String("policy"); p != workflows.ReleasePowerOff && p != workflows.ReleaseReference {
				return badUsage(c, "--policy %q: want %s or %s", p, workflows.ReleasePowerOff, workflows.ReleaseReference)
			}
			return runNodeOps(c, nodeOp{
				start: func(cl *starter.Client, n string) (starter.Run, error) {
					// The node is being released: its checkout timer has no job left.
					if _, err := cl.CancelCheckoutExpiry(c.Context, n); err != nil {
						return starter.Run{}, err
					}
					return cl.Release(c.Context, workflows.ReleaseInput{Node: n, Policy: c.String("policy"), User: c.String("user")})
				},
				wait: func(cl *starter.Client, r starter.Run) (string, error) {
					res, err := cl.WaitRelease(c.Context, r)
					return "released (" + res.Policy + ")", err
				},
			})
		},
	}
}

// eachNode validates the NODE… arguments, dials, runs op on every node and
// prints one line per node; it exits 1 when any node failed.
func eachNode(c *cli.Context, op func(*ownership.Client, string) (string, error)) error {
	nodes, err := nodeArgs(c, false)
	if err != nil {
		return err
	}
	cl, err := ldapDial(c)
	if err != nil {
		return err
	}
	defer cl.Close()
	return exitIfFailed(forEach(c, nodes, func(n string) (string, error) { return op(cl, n) }), len(nodes))
}

func ownersCommand() *cli.Command {
	return &cli.Command{
		Name:      "owners",
		Usage:     "show who owns nodes and who may operate them (all server entries without NODE)",
		ArgsUsage: "[NODE…]",
		Flags:     ldapFlags(),
		Action: func(c *cli.Context) error {
			nodes, err := nodeArgs(c, true)
			if err != nil {
				return err
			}
			cl, err := ldapDial(c)
			if err != nil {
				return err
			}
			defer cl.Close()
			res, ownersErr := cl.Owners(c.Context, nodes)
			if res == nil && ownersErr != nil {
				return ownersErr
			}
			if c.Bool("json") {
				if res == nil {
					res = []ownership.Ownership{}
				}
				if err := writeJSON(c.App.Writer, res); err != nil {
					return err
				}
			} else {
				tw := tabwriter.NewWriter(c.App.Writer, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "NODE\tOWNER\tMEMBERS")
				for _, o := range res {
					owner := o.Owner
					if owner == "" {
						owner = "-"
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\n", o.Node, owner, strings.Join(o.Members, ";"))
				}
				if err := tw.Flush(); err != nil {
					return err
				}
			}
			if ownersErr != nil {
				return cli.Exit(ownersErr.Error(), 1)
			}
			return nil
		},
	}
}
