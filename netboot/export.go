package netboot

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// Export publishes dir at HTTP /exports/<node>/ by pointing the symlink
// <store>/exports/<node> at dir's absolute path. The link is replaced
// atomically (a new link is created beside it and renamed over it), so a
// reader sees the old or the new directory, never none. Exporting the same
// directory again is a no-op. dir must be an existing directory. Errors wrap
// ErrInvalidName for a bad node name.
func (s *Store) Export(node, dir string) error {
	if err := ValidName(node); err != nil {
		return fmt.Errorf("export: %w", err)
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return fmt.Errorf("export %s: %w", node, err)
	}
	fi, err := os.Stat(abs)
	if err != nil {
		return fmt.Errorf("export %s: %w", node, err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("export %s: %s is not a directory", node, abs)
	}
	link := filepath.Join(s.ExportsDir(), node)
	if cur, err := os.Readlink(link); err == nil && cur == abs {
		return nil
	}
	var rnd [8]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return fmt.Errorf("export %s: %w", node, err)
	}
	tmp := filepath.Join(s.ExportsDir(), ".tmp-"+node+"-"+hex.EncodeToString(rnd[:]))
	if err := os.Symlink(abs, tmp); err != nil {
		return fmt.Errorf("export %s: %w", node, err)
	}
	if err := os.Rename(tmp, link); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("export %s: %w", node, err)
	}
	if err := syncDir(s.ExportsDir()); err != nil {
		return fmt.Errorf("export %s: %w", node, err)
	}
	return nil
}

// Unexport removes node's export link and the .torrents of all its runs;
// unexporting a node that is not exported is not an error. The exported
// directory itself is untouched. Errors wrap ErrInvalidName for a bad node name.
func (s *Store) Unexport(node string) error {
	if err := ValidName(node); err != nil {
		return fmt.Errorf("unexport: %w", err)
	}
	if err := os.RemoveAll(filepath.Join(s.TorrentsDir(), node)); err != nil {
		return fmt.Errorf("unexport %s: %w", node, err)
	}
	if err := syncDir(s.TorrentsDir()); err != nil {
		return fmt.Errorf("unexport %s: %w", node, err)
	}
	link := filepath.Join(s.ExportsDir(), node)
	fi, err := os.Lstat(link)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("unexport %s: %w", node, err)
	}
	if fi.Mode()&fs.ModeSymlink == 0 {
		return fmt.Errorf("unexport %s: %s is not an export link", node, link)
	}
	if err := os.Remove(link); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("unexport %s: %w", node, err)
	}
	if err := syncDir(s.ExportsDir()); err != nil {
		return fmt.Errorf("unexport %s: %w", node, err)
	}
	return nil
}

// ExportDir returns the directory currently exported for node. Errors wrap
// fs.ErrNotExist when node is not exported, ErrInvalidName for a bad name.
func (s *Store) ExportDir(node string) (string, error) {
	if err := ValidName(node); err != nil {
		return "", fmt.Errorf("export dir: %w", err)
	}
	target, err := os.Readlink(filepath.Join(s.ExportsDir(), node))
	if err != nil {
		return "", fmt.Errorf("export dir %s: %w", node, err)
	}
	return target, nil
}
