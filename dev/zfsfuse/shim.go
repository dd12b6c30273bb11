package zfsfuse

import (
	"bytes"
	_ "embed"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// The shims are POSIX sh + awk. Each starts with the line "REAL=@REAL@",
// replaced at install time by the absolute path of the real command.
var (
	//go:embed zfs-shim.sh
	zfsShim string
	//go:embed zpool-shim.sh
	zpoolShim string
)

const (
	shimMarker      = "rackflow dev/CI shim" // in every shim's header comment
	realPlaceholder = "REAL=@REAL@"
)

// InstallShims writes the zfs and zpool shims into binDir (created if
// missing), each calling the real command found on PATH (binDir excluded)
// or in /usr/sbin, /sbin. Files are replaced atomically, so processes
// running a shim meanwhile are unaffected. Returns ErrNotInstalled (wrapped)
// when a real command is missing.
func InstallShims(binDir string) error {
	if err := os.MkdirAll(binDir, 0o755); err != nil {
		return fmt.Errorf("zfsfuse: shim dir: %w", err)
	}
	for _, s := range []struct{ name, text string }{{"zfs", zfsShim}, {"zpool", zpoolShim}} {
		real, err := realBinary(s.name, binDir)
		if err != nil {
			return fmt.Errorf("zfsfuse: shim: %w", err)
		}
		if !strings.Contains(s.text, realPlaceholder) {
			return fmt.Errorf("zfsfuse: shim %s has no %q line", s.name, realPlaceholder)
		}
		script := strings.Replace(s.text, realPlaceholder, "REAL="+shellQuote(real), 1)
		if err := writeExecutable(filepath.Join(binDir, s.name), []byte(script)); err != nil {
			return fmt.Errorf("zfsfuse: shim %s: %w", s.name, err)
		}
	}
	return nil
}

// writeExecutable writes data to path (mode 0755) through a temporary file
// and a rename, leaving an identical existing file alone.
func writeExecutable(path string, data []byte) error {
	if old, err := os.ReadFile(path); err == nil && bytes.Equal(old, data) {
		return nil
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(0o755); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// isShim reports whether the file at path is one of these shims.
func isShim(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	head := make([]byte, 512)
	n, _ := f.Read(head)
	return bytes.Contains(head[:n], []byte(shimMarker))
}

// shellQuote quotes s as one POSIX shell word.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
