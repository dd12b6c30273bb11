package netboot

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Store is a file-backed boot-profile store rooted at a directory:
//
//	<dir>/profiles/<mac with dashes>.json   one Profile per MAC
//	<dir>/exports/<node>                    symlink to the exported directory
//	<dir>/torrents/<node>/<run>.torrent     BitTorrent metainfo of the node's export by workflow run <run> (swarm transport)
//
// Every write is atomic (temp file + fsync + rename + directory fsync), so
// several Store values (even in several processes) may share a directory;
// readers see either the old or the new profile, never a partial one.
// Profile files are mode 0640 (their kernel arguments carry check-in
// tokens): a worker and a netboot service sharing the directory need the same
// user or group.
type Store struct {
	dir string
}

const (
	profilesDir = "profiles"
	exportsDir  = "exports"
	torrentsDir = "torrents"
)

// OpenStore opens (creating if needed) the store rooted at dir.
func OpenStore(dir string) (*Store, error) {
	if dir == "" {
		return nil, errors.New("open store: empty directory")
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", dir, err)
	}
	for _, sub := range []string{profilesDir, exportsDir, torrentsDir} {
		if err := os.MkdirAll(filepath.Join(abs, sub), 0o755); err != nil {
			return nil, fmt.Errorf("open store %s: %w", dir, err)
		}
	}
	return &Store{dir: abs}, nil
}

// Dir returns the store's absolute root directory.
func (s *Store) Dir() string { return s.dir }

// ExportsDir returns the directory holding the export symlinks,
// <dir>/exports.
func (s *Store) ExportsDir() string { return filepath.Join(s.dir, exportsDir) }

// TorrentsDir returns the directory holding the exports' .torrent files,
// <dir>/torrents.
func (s *Store) TorrentsDir() string { return filepath.Join(s.dir, torrentsDir) }

// PutTorrent writes data (a bencoded .torrent) as the one of node's export
// by workflow run run, served at HTTP TorrentPath(node, run), atomically;
// writing it again replaces it. DeleteTorrent removes it, Unexport all of
// the node's. Errors wrap ErrInvalidName for a bad node or run name.
func (s *Store) PutTorrent(node, run string, data []byte) error {
	path, err := s.torrentPath(node, run)
	if err != nil {
		return fmt.Errorf("put torrent: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("put torrent %s/%s: %w", node, run, err)
	}
	if err := writeFileAtomic(path, data, 0o644); err != nil {
		return fmt.Errorf("put torrent %s/%s: %w", node, run, err)
	}
	return nil
}

// DeleteTorrent removes the .torrent of node's export by run, so
// TorrentPath(node, run) answers 404 and the agents that fetched it stop
// seeding at their next check (swarm.KeepSeeding); the .torrents of the
// node's other runs stay. Deleting a missing one is not an error. Errors
// wrap ErrInvalidName for a bad node or run name.
func (s *Store) DeleteTorrent(node, run string) error {
	path, err := s.torrentPath(node, run)
	if err != nil {
		return fmt.Errorf("delete torrent: %w", err)
	}
	if err := os.Remove(path); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return fmt.Errorf("delete torrent %s/%s: %w", node, run, err)
	}
	if err := syncDir(filepath.Dir(path)); err != nil {
		return fmt.Errorf("delete torrent %s/%s: %w", node, run, err)
	}
	return nil
}

// torrentPath is the file of the .torrent of node's export by run,
// <dir>/torrents/<node>/<run>.torrent, after checking both names.
func (s *Store) torrentPath(node, run string) (string, error) {
	if err := ValidName(node); err != nil {
		return "", err
	}
	if err := ValidRun(run); err != nil {
		return "", err
	}
	return filepath.Join(s.TorrentsDir(), node, run+".torrent"), nil
}

// TorrentPath is the HTTP path of the .torrent of node's export by
// workflow run run: "/torrents/<node>/<run>.torrent". Both names must be
// valid (ValidName, ValidRun).
func TorrentPath(node, run string) string {
	return "/torrents/" + node + "/" + run + ".torrent"
}

func (s *Store) profilePath(mac string) string {
	return filepath.Join(s.dir, profilesDir, strings.ReplaceAll(mac, ":", "-")+".json")
}

// Put validates p (MAC, mode, node name, artifact names, argument words),
// canonicalises its MAC, stamps UpdatedAt with the current UTC time when it
// is zero, and writes it atomically, replacing any previous profile for the
// MAC. Errors wrap ErrInvalidMAC / ErrInvalidProfile for bad input.
func (s *Store) Put(p Profile) error {
	p, err := p.validate()
	if err != nil {
		return fmt.Errorf("put profile: %w", err)
	}
	if p.UpdatedAt.IsZero() {
		p.UpdatedAt = time.Now().UTC()
	}
	data, err := json.MarshalIndent(p, "", "  ")
	if err != nil {
		return fmt.Errorf("put profile %s: %w", p.MAC, err)
	}
	if err := writeFileAtomic(s.profilePath(p.MAC), append(data, '\n'), 0o640); err != nil {
		return fmt.Errorf("put profile %s: %w", p.MAC, err)
	}
	return nil
}

// Get returns the profile for mac (any form CanonicalMAC accepts). Errors
// wrap ErrNoProfile when there is none, ErrInvalidMAC for a bad MAC.
func (s *Store) Get(mac string) (Profile, error) {
	canon, err := CanonicalMAC(mac)
	if err != nil {
		return Profile{}, fmt.Errorf("get profile: %w", err)
	}
	var p Profile
	err = readJSONFile(s.profilePath(canon), &p)
	if errors.Is(err, fs.ErrNotExist) {
		return Profile{}, fmt.Errorf("get profile %s: %w", canon, ErrNoProfile)
	}
	if err != nil {
		return Profile{}, fmt.Errorf("get profile %s: %w", canon, err)
	}
	return p, nil
}

// readJSONFile decodes the JSON file at path into v. A missing file is an
// error wrapping fs.ErrNotExist; one that does not decode names path.
func readJSONFile(path string, v any) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("decode %s: %w", path, err)
	}
	return nil
}

// Delete removes the profile for mac; deleting a missing profile is not an
// error. Errors wrap ErrInvalidMAC for a bad MAC.
func (s *Store) Delete(mac string) error {
	canon, err := CanonicalMAC(mac)
	if err != nil {
		return fmt.Errorf("delete profile: %w", err)
	}
	path := s.profilePath(canon)
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("delete profile %s: %w", canon, err)
	}
	if err := syncDir(filepath.Dir(path)); err != nil {
		return fmt.Errorf("delete profile %s: %w", canon, err)
	}
	return nil
}

// writeFileAtomic writes data to path (mode perm) via a temp file in the
// same directory, fsyncs it, renames it over path and fsyncs the directory.
func writeFileAtomic(path string, data []byte, perm os.FileMode) (err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, ".tmp-"+filepath.Base(path)+"-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			_ = f.Close()
			_ = os.Remove(tmp)
		}
	}()
	if _, err = f.Write(data); err != nil {
		return err
	}
	if err = f.Chmod(perm); err != nil {
		return err
	}
	if err = f.Sync(); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	if err = os.Rename(tmp, path); err != nil {
		return err
	}
	return syncDir(dir)
}

// syncDir fsyncs a directory so that a rename or removal in it is durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}
