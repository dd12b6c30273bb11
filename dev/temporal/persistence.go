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

// SQLite tuning for the state-dir database: WAL journal with
// synchronous=NORMAL (durable across process crashes, not power loss; the
// usual WAL pairing, far fewer fsyncs than the default rollback journal) and
// a busy timeout so that another process reading the file (sqlite3, a
// backup) makes the server wait rather than fail.
const busyTimeoutMsec = "10000"

// fileMaxConns is the connection count for a state-dir database. One, on
// purpose: the SQLite plugin opens DEFERRED transactions, so with several
// connections a transaction that reads and then writes fails at once with
// SQLITE_BUSY / SQLITE_BUSY_SNAPSHOT (517) whenever another connection
// wrote in between; busy_timeout cannot help there. With 4 connections a
// 1000-workflow burst logged ~350 such errors (retried, but each one a
// failed shard or task-queue write) and was not faster than with one
// connection (see TestBurst). It is a variable so TestBurst can compare.
var fileMaxConns = 1

// prepareStateDir creates r.StateDir if needed and locks it for this
// server; release unlocks it. Without a state dir there is nothing to do.
func prepareStateDir(r resolved) (release func() error, err error) {
	if r.StateDir == "" {
		return func() error { return nil }, nil
	}
	if err := os.MkdirAll(r.StateDir, 0o755); err != nil {
		return nil, fmt.Errorf("devtemporal: creating state dir: %w", err)
	}
	return lockStateDir(r.StateDir)
}

// sqlConfig returns the persistence config for r. For a state dir (which
// prepareStateDir has created) it creates the schema when the database file
// does not exist yet, in a side file renamed into place, so that a failed
// setup never leaves a half-initialised temporal.db behind. An in-memory
// database gets a unique name so that several servers in one process
// (tests) stay apart; the SQLite plugin sets up its schema on first use.
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
