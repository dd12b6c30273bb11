package qemurig

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeQMP is a QMP server on a unix socket: the greeting, then one answer
// per command — {"return":{}}, the error fail[execute] names, or none for
// a command listed in hang.
type fakeQMP struct {
	mu   sync.Mutex
	cmds []map[string]any
	fail map[string]string
	hang map[string]bool
}

func (f *fakeQMP) serve(t *testing.T, sock string) {
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go f.session(c)
		}
	}()
}

func (f *fakeQMP) session(c net.Conn) {
	defer c.Close()
	_, _ = c.Write([]byte(`{"QMP":{"version":{"qemu":{"major":7,"minor":2,"micro":0},"package":""},"capabilities":[]}}` + "\n"))
	dec := json.NewDecoder(bufio.NewReader(c))
	for {
		var cmd map[string]any
		if err := dec.Decode(&cmd); err != nil {
			return
		}
		name, _ := cmd["execute"].(string)
		f.mu.Lock()
		if name != "qmp_capabilities" {
			f.cmds = append(f.cmds, cmd)
		}
		desc, failing := f.fail[name]
		hang := f.hang[name]
		f.mu.Unlock()
		switch {
		case hang:
			continue
		case failing:
			b, _ := json.Marshal(map[string]any{"error": map[string]string{"class": "GenericError", "desc": desc}})
			_, _ = c.Write(append(b, '\n'))
		default:
			_, _ = c.Write([]byte(`{"return":{}}` + "\n"))
		}
	}
}

func TestInsertUSB(t *testing.T) {
	dir := t.TempDir()
	f := &fakeQMP{}
	f.serve(t, QMPSocket(dir))
	serial, err := InsertUSB(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.cmds) != 2 || f.cmds[0]["execute"] != "blockdev-add" || f.cmds[1]["execute"] != "device_add" {
		t.Fatalf("QMP commands = %v, want blockdev-add then device_add", f.cmds)
	}
	blk := f.cmds[0]["arguments"].(map[string]any)
	dev := f.cmds[1]["arguments"].(map[string]any)
	file := blk["file"].(map[string]any)["filename"].(string)
	if fi, err := os.Stat(file); err != nil || fi.Size() != USBDriveSize || filepath.Dir(file) != dir {
		t.Errorf("drive image %s: %v, %v", file, fi, err)
	}
	if dev["driver"] != "usb-storage" || dev["bus"] != "xhci.0" || dev["drive"] != blk["node-name"] || dev["serial"] != serial || dev["removable"] != true {
		t.Errorf("device_add arguments = %v (blockdev %v, serial %s)", dev, blk, serial)
	}
}

func TestInsertUSBFailures(t *testing.T) {
	old := qmpTimeout
	qmpTimeout = 200 * time.Millisecond
	defer func() { qmpTimeout = old }()
	tests := []struct {
		name string
		qmp  *fakeQMP // nil: no socket
		want string
	}{
		{"VM off", nil, ErrVMNotRunning.Error()},
		{"no USB controller", &fakeQMP{fail: map[string]string{"device_add": "Bus 'xhci.0' not found"}}, "QMP device_add: Bus 'xhci.0' not found"},
		{"image refused", &fakeQMP{fail: map[string]string{"blockdev-add": "Could not open 'usb.img'"}}, "QMP blockdev-add: Could not open"},
		{"VM hangs", &fakeQMP{hang: map[string]bool{"device_add": true}}, "QMP device_add: no answer within 200ms"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if tt.qmp != nil {
				tt.qmp.serve(t, QMPSocket(dir))
			}
			_, err := InsertUSB(context.Background(), dir)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
			if tt.qmp == nil && !errors.Is(err, ErrVMNotRunning) {
				t.Errorf("err = %v, want ErrVMNotRunning", err)
			}
		})
	}
}
