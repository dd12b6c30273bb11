package vrack

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestInsertUSB(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "usb")
	first, err := InsertUSB(dir, "r01n05")
	if err != nil {
		t.Fatal(err)
	}
	second, err := InsertUSB(dir, "r01n05")
	if err != nil {
		t.Fatal(err)
	}
	if first == second || !strings.HasPrefix(first, "RF") {
		t.Errorf("serials %q, %q: want two distinct drives", first, second)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "r01n05")); err != nil || strings.TrimSpace(string(b)) != second {
		t.Errorf("port holds %q, %v; want the last drive %s", b, err, second)
	}
	for _, bad := range []string{"", "../r01n05", "R01N05", "a/b", "r01n05\x00"} {
		if _, err := InsertUSB(dir, bad); err == nil {
			t.Errorf("InsertUSB(%q) accepted", bad)
		}
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("the USB folder holds %d entries, want r01n05's port only", len(entries))
	}
}
