package devtemporal

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"go.temporal.io/server/common/config"
	sqliteplugin "go.temporal.io/server/common/persistence/sql/sqlplugin/sqlite"
	sqliteschema "go.temporal.io/server/schema/sqlite"
	"google.golang.org/protobuf/types/known/durationpb"
)

// SQLite tuning for the state-dir database. WAL lets readers run beside the
// single writer, so a few connections help; busy_timeout makes a second
// writer wait instead of failing at once; synchronous=NORMAL is durable
// across process crashes (not power loss), the usual WAL pairing.
const busyTimeoutMsec = "10000"

// fileMaxConns is the connection count for a state-dir database (a
// variable so that the burst test can compare settings).
var fileMaxConns = 4

// sqlConfig returns the persistence config for r. For a state dir it
// creates the directory and, when the database file does not exist yet,
// the schema (built in a side file and renamed into place, so a failed
// setup never leaves a half-initialised temporal.db behind). An in-memory
// database gets a unique name so that several servers in one process (tests)
// stay apart; the SQLite plugin sets up its schema on first use.
func sqlConfig(r resolved) (*config.SQL, error) {
	if r.StateDir == "" {
		name, err := randomName()
		if err != nil {
			return nil, err
		}
		return &config.SQL{
			PluginName:        sqliteplugin.PluginName,
			DatabaseName:      "rackflow-" + name,
			ConnectAttributes: map[string]string{"mode": "memory", "cache": "shared"},
		}, nil
	}

	if err := os.MkdirAll(r.StateDir, 0o755); err != nil {
		return nil, fmt.Errorf("devtemporal: creating state dir: %w", err)
	}
	path := filepath.Join(r.StateDir, DBFileName)
	switch _, err := os.Stat(path); {
	case err == nil:
	case errors.Is(err, fs.ErrNotExist):
		if err := createDatabase(path); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("devtemporal: checking database file: %w", err)
	}
	return &config.SQL{
		PluginName:   sqliteplugin.PluginName,
		DatabaseName: path,
		ConnectAttributes: map[string]string{
			"mode":         "rwc",
			"journal_mode": "wal",
			"synchronous":  "normal",
			"busy_timeout": busyTimeoutMsec,
		},
		MaxConns:     fileMaxConns,
		MaxIdleConns: fileMaxConns,
	}, nil
}

// createDatabase writes a fresh schema to path+".new" (rollback journal, so
// every committed statement is in the main file) and renames it to path.
func createDatabase(path string) error {
	tmp := path + ".new"
	for _, p := range []string{tmp, tmp + "-journal"} {
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("devtemporal: removing leftover %s: %w", p, err)
		}
	}
	setup := &config.SQL{
		PluginName:        sqliteplugin.PluginName,
		DatabaseName:      tmp,
		ConnectAttributes: map[string]string{"mode": "rwc"},
	}
	if err := sqliteschema.SetupSchema(setup); err != nil {
		return fmt.Errorf("devtemporal: creating schema in %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("devtemporal: moving new database into place: %w", err)
	}
	return nil
}

// createNamespace inserts r.Namespace with its retention and search
// attributes straight into the database if it does not exist yet (an
// existing namespace is left alone; ensureNamespace fixes it up through the
// API once the server runs). Creating it before start means the server's
// namespace caches know it from the first moment.
func createNamespace(sqlCfg *config.SQL, r resolved) error {
	ns, err := sqliteschema.NewNamespaceConfig(clusterName, r.Namespace, false, r.SearchAttributes)
	if err != nil {
		return fmt.Errorf("devtemporal: namespace %q: %w", r.Namespace, err)
	}
	ns.Detail.Config.Retention = durationpb.New(r.Retention)
	if err := sqliteschema.CreateNamespaces(sqlCfg, ns); err != nil {
		return fmt.Errorf("devtemporal: creating namespace %q: %w", r.Namespace, err)
	}
	return nil
}

func randomName() (string, error) {
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("devtemporal: random name: %w", err)
	}
	return hex.EncodeToString(b), nil
}
