package inventory

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"gopkg.in/yaml.v3"
)

// AddNode appends n to the inventory file at path (HaDeS' enrolment of a
// discovered machine) and returns the new inventory. The file keeps its
// comments and layout; the result is validated first (every error names
// the field, as Load's) and the file is left untouched when it does not
// validate; it is replaced atomically (temp file, fsync, rename), keeping
// its mode. n.MACs are canonicalised by the validation.
func AddNode(path string, n Node) (*Inventory, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("inventory: %w", err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 || doc.Content[0].Kind != yaml.MappingNode {
		return nil, fmt.Errorf("%s: not a YAML mapping", path)
	}
	root := doc.Content[0]
	nodes := child(root, "nodes")
	if nodes == nil {
		nodes = &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq"}
		root.Content = append(root.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: "nodes"}, nodes)
	}
	if nodes.Kind != yaml.SequenceNode {
		return nil, fmt.Errorf("%s: nodes is not a list", path)
	}
	var item yaml.Node
	if err := item.Encode(n); err != nil {
		return nil, fmt.Errorf("inventory: encode node %s: %w", n.Name, err)
	}
	nodes.Content = append(nodes.Content, &item)
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(&doc); err != nil {
		return nil, fmt.Errorf("inventory: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("inventory: %w", err)
	}
	inv, err := Parse(path, buf.Bytes())
	if err != nil {
		return nil, err
	}
	if err := replaceFile(path, buf.Bytes()); err != nil {
		return nil, fmt.Errorf("inventory: %w", err)
	}
	return inv, nil
}

// replaceFile writes data beside path and renames it over path, keeping
// path's mode.
func replaceFile(path string, data []byte) (err error) {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(path), ".tmp-"+filepath.Base(path)+"-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			_ = f.Close()
			_ = os.Remove(f.Name())
		}
	}()
	if _, err = f.Write(data); err != nil {
		return err
	}
	if err = f.Chmod(fi.Mode().Perm()); err != nil {
		return err
	}
	if err = f.Sync(); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	if err = os.Rename(f.Name(), path); err != nil {
		return err
	}
	d, err := os.Open(filepath.Dir(path))
	if err != nil {
		return err
	}
	return errors.Join(d.Sync(), d.Close())
}
