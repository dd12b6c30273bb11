package netboot

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeClock is a settable time source.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func testSubnet(first, last string) Subnet {
	return Subnet{Name: "r01", Prefix: netip.MustParsePrefix("10.0.0.0/24"),
		PoolStart: netip.MustParseAddr(first), PoolEnd: netip.MustParseAddr(last), Lease: time.Hour, Unknown: UnknownEnrol}
}

func openTestPool(t *testing.T, dir string, sub Subnet, clk *fakeClock, reserved ...string) *leasePool {
	t.Helper()
	res := map[netip.Addr]bool{}
	for _, r := range reserved {
		res[netip.MustParseAddr(r)] = true
	}
	p, err := openLeasePool(dir, []Subnet{sub}, func(a netip.Addr) bool { return res[a] }, clk.now)
	if err != nil {
		t.Fatalf("openLeasePool: %v", err)
	}
	t.Cleanup(func() { _ = p.close() })
	return p
}

func macN(i int) string { return fmt.Sprintf("02:52:46:aa:%02x:%02x", i>>8, i&0xff) }

// dora offers and binds an address to mac.
func dora(t *testing.T, p *leasePool, sub *Subnet, mac string) (netip.Addr, error) {
	t.Helper()
	ip, err := p.offer(sub, mac, netip.Addr{})
	if err != nil {
		return ip, err
	}
	_, err = p.bind(sub, mac, ip)
	return ip, err
}

func TestLeasePoolRFCPaths(t *testing.T) {
	a, b := macN(1), macN(2)
	tests := []struct {
		name        string
		first, last string
		reserved    []string
		run         func(t *testing.T, p *leasePool, sub *Subnet, clk *fakeClock)
	}{
		{"same MAC gets the same address again", "10.0.0.10", "10.0.0.19", nil, func(t *testing.T, p *leasePool, sub *Subnet, _ *fakeClock) {
			ip1, err := dora(t, p, sub, a)
			if err != nil {
				t.Fatal(err)
			}
			ip2, err := p.offer(sub, a, netip.Addr{})
			if err != nil || ip2 != ip1 {
				t.Fatalf("second offer %v, %v; want %v", ip2, err, ip1)
			}
		}},
		{"requested address (option 50) honoured when free", "10.0.0.10", "10.0.0.19", nil, func(t *testing.T, p *leasePool, sub *Subnet, _ *fakeClock) {
			want := netip.MustParseAddr("10.0.0.17")
			if ip, err := p.offer(sub, a, want); err != nil || ip != want {
				t.Fatalf("offer %v, %v; want %v", ip, err, want)
			}
		}},
		{"RELEASE frees the address for another MAC", "10.0.0.10", "10.0.0.10", nil, func(t *testing.T, p *leasePool, sub *Subnet, _ *fakeClock) {
			ip, err := dora(t, p, sub, a)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := p.offer(sub, b, netip.Addr{}); !errors.Is(err, ErrPoolExhausted) {
				t.Fatalf("offer to b while a holds the only address: %v, want ErrPoolExhausted", err)
			}
			if freed, err := p.release(sub, b, ip); freed || err != nil {
				t.Fatalf("release by a MAC that does not hold it: %v, %v", freed, err)
			}
			if freed, err := p.release(sub, a, ip); !freed || err != nil {
				t.Fatalf("release: %v, %v", freed, err)
			}
			if got, err := dora(t, p, sub, b); err != nil || got != ip {
				t.Fatalf("after release b got %v, %v; want %v", got, err, ip)
			}
		}},
		{"DECLINE quarantines the address for everyone", "10.0.0.10", "10.0.0.10", nil, func(t *testing.T, p *leasePool, sub *Subnet, clk *fakeClock) {
			ip, err := dora(t, p, sub, a)
			if err != nil {
				t.Fatal(err)
			}
			if held, err := p.decline(sub, a, ip); !held || err != nil {
				t.Fatalf("decline: %v, %v", held, err)
			}
			for _, mac := range []string{a, b} {
				if _, err := p.offer(sub, mac, ip); !errors.Is(err, ErrPoolExhausted) {
					t.Fatalf("offer to %s during quarantine: %v, want ErrPoolExhausted", mac, err)
				}
				if _, err := p.bind(sub, mac, ip); !errors.Is(err, ErrAddressTaken) {
					t.Fatalf("bind by %s during quarantine: %v, want ErrAddressTaken", mac, err)
				}
			}
			clk.add(DeclineQuarantine + time.Second)
			if got, err := dora(t, p, sub, b); err != nil || got != ip {
				t.Fatalf("after the quarantine b got %v, %v; want %v", got, err, ip)
			}
		}},
		{"REQUEST for an address held by another MAC or outside the pool", "10.0.0.10", "10.0.0.19", nil, func(t *testing.T, p *leasePool, sub *Subnet, _ *fakeClock) {
			ip, err := dora(t, p, sub, a)
			if err != nil {
				t.Fatal(err)
			}
			for _, want := range []netip.Addr{ip, netip.MustParseAddr("10.0.0.50"), netip.MustParseAddr("192.0.2.1")} {
				if _, err := p.bind(sub, b, want); !errors.Is(err, ErrAddressTaken) {
					t.Errorf("bind %v by b: %v, want ErrAddressTaken", want, err)
				}
			}
			offered, err := p.offer(sub, b, netip.Addr{})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := p.bind(sub, a, offered); !errors.Is(err, ErrAddressTaken) {
				t.Errorf("a takes the address offered to b: %v, want ErrAddressTaken", err)
			}
		}},
		{"reservations are never handed out", "10.0.0.10", "10.0.0.12", []string{"10.0.0.11"}, func(t *testing.T, p *leasePool, sub *Subnet, _ *fakeClock) {
			got := map[netip.Addr]bool{}
			for i := 1; i <= 2; i++ {
				ip, err := dora(t, p, sub, macN(i))
				if err != nil {
					t.Fatal(err)
				}
				got[ip] = true
			}
			if got[netip.MustParseAddr("10.0.0.11")] {
				t.Fatal("the reserved address was leased")
			}
			if _, err := p.offer(sub, macN(3), netip.MustParseAddr("10.0.0.11")); !errors.Is(err, ErrPoolExhausted) {
				t.Fatalf("third MAC asking for the reserved address: %v, want ErrPoolExhausted", err)
			}
			if _, err := p.bind(sub, macN(3), netip.MustParseAddr("10.0.0.11")); !errors.Is(err, ErrAddressTaken) {
				t.Fatalf("REQUEST for the reserved address: %v, want ErrAddressTaken", err)
			}
		}},
		{"an expired lease goes to another MAC, then its old holder is refused", "10.0.0.10", "10.0.0.10", nil, func(t *testing.T, p *leasePool, sub *Subnet, clk *fakeClock) {
			ip, err := dora(t, p, sub, a)
			if err != nil {
				t.Fatal(err)
			}
			clk.add(sub.Lease + time.Second)
			if got, err := dora(t, p, sub, b); err != nil || got != ip {
				t.Fatalf("b got %v, %v; want the expired %v", got, err, ip)
			}
			if _, err := p.bind(sub, a, ip); !errors.Is(err, ErrAddressTaken) {
				t.Fatalf("a renews the address b now holds: %v, want ErrAddressTaken", err)
			}
		}},
		{"an unanswered offer lapses", "10.0.0.10", "10.0.0.10", nil, func(t *testing.T, p *leasePool, sub *Subnet, clk *fakeClock) {
			if _, err := p.offer(sub, a, netip.Addr{}); err != nil {
				t.Fatal(err)
			}
			if _, err := p.offer(sub, b, netip.Addr{}); !errors.Is(err, ErrPoolExhausted) {
				t.Fatalf("offer to b while a's offer stands: %v", err)
			}
			clk.add(offerHold + time.Second)
			if _, err := dora(t, p, sub, b); err != nil {
				t.Fatalf("after a's offer lapsed: %v", err)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := &fakeClock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
			sub := testSubnet(tt.first, tt.last)
			p := openTestPool(t, t.TempDir(), sub, clk, tt.reserved...)
			tt.run(t, p, &sub, clk)
		})
	}
}

func TestLeasePoolRestartKeepsLeases(t *testing.T) {
	dir := t.TempDir()
	clk := &fakeClock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	sub := testSubnet("10.0.0.10", "10.0.0.13")
	p := openTestPool(t, dir, sub, clk)
	held := map[string]netip.Addr{}
	for i := 1; i <= 3; i++ {
		ip, err := dora(t, p, &sub, macN(i))
		if err != nil {
			t.Fatal(err)
		}
		held[macN(i)] = ip
	}
	if _, err := p.release(&sub, macN(3), held[macN(3)]); err != nil {
		t.Fatal(err)
	}
	declined, err := p.offer(&sub, macN(4), netip.Addr{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.bind(&sub, macN(4), declined); err != nil {
		t.Fatal(err)
	}
	if _, err := p.decline(&sub, macN(4), declined); err != nil {
		t.Fatal(err)
	}
	if _, err := openLeasePool(dir, []Subnet{sub}, func(netip.Addr) bool { return false }, clk.now); err == nil {
		t.Fatal("a second pool opened the same state directory")
	}
	if err := p.close(); err != nil {
		t.Fatal(err)
	}

	p2 := openTestPool(t, dir, sub, clk)
	for i := 1; i <= 2; i++ {
		if ip, ok := p2.leaseOf(&sub, macN(i)); !ok || ip != held[macN(i)] {
			t.Errorf("after restart %s holds %v (%v), want %v", macN(i), ip, ok, held[macN(i)])
		}
	}
	if _, ok := p2.leaseOf(&sub, macN(3)); ok {
		t.Error("the released lease came back after a restart")
	}
	// The released address is remembered for its MAC; the declined one
	// stays quarantined; the new MAC gets neither of the others' addresses.
	if ip, err := p2.offer(&sub, macN(3), netip.Addr{}); err != nil || ip != held[macN(3)] {
		t.Errorf("released MAC offered %v, %v; want its old %v", ip, err, held[macN(3)])
	}
	if _, err := p2.offer(&sub, macN(5), netip.Addr{}); !errors.Is(err, ErrPoolExhausted) {
		t.Errorf("new MAC: %v, want ErrPoolExhausted (two bound, one offered, one quarantined)", err)
	}
}

func TestLeaseJournalDamage(t *testing.T) {
	good := `{"op":"bind","ip":"10.0.0.10","mac":"02:52:46:aa:00:01","subnet":"r01","expires":"2026-01-02T04:04:05Z"}` + "\n"
	tests := []struct {
		name    string
		content string
		wantErr string // "" → opens
		wantIP  bool   // 10.0.0.10 held by macN(1) after open
	}{
		{"empty", "", "", false},
		{"one lease", good, "", true},
		{"torn last line is dropped", good + `{"op":"bind","ip":"10.0.0.11","ma`, "", true},
		{"garbage line in the middle", "not json\n" + good, "line 1", false},
		{"unknown op", `{"op":"steal","ip":"10.0.0.10"}` + "\n" + good, "unknown op", false},
		{"bad address", `{"op":"bind","ip":"10.0.0","mac":"02:52:46:aa:00:01"}` + "\n", "not an IPv4", false},
		{"bad MAC", `{"op":"bind","ip":"10.0.0.12","mac":"zz"}` + "\n", "invalid MAC", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, leaseFile)
			if err := os.WriteFile(path, []byte(tt.content), 0o640); err != nil {
				t.Fatal(err)
			}
			clk := &fakeClock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
			sub := testSubnet("10.0.0.10", "10.0.0.19")
			p, err := openLeasePool(dir, []Subnet{sub}, func(netip.Addr) bool { return false }, clk.now)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("open: %v, want an error containing %q", err, tt.wantErr)
				}
				if b, _ := os.ReadFile(path); string(b) != tt.content {
					t.Fatal("a refused journal was modified")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer p.close()
			ip, ok := p.leaseOf(&sub, macN(1))
			if ok != tt.wantIP || ok && ip != netip.MustParseAddr("10.0.0.10") {
				t.Fatalf("lease of %s = %v, %v; want held %v", macN(1), ip, ok, tt.wantIP)
			}
		})
	}
}

// TestLeasePoolConcurrent has 4× more MACs than addresses race through
// DISCOVER/REQUEST: every address goes to exactly one MAC, the rest see
// ErrPoolExhausted or ErrAddressTaken, and a reopened journal agrees.
func TestLeasePoolConcurrent(t *testing.T) {
	dir := t.TempDir()
	clk := &fakeClock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	sub := testSubnet("10.0.0.10", "10.0.0.41") // 32 addresses
	p := openTestPool(t, dir, sub, clk)
	const macs = 128
	var wg sync.WaitGroup
	var mu sync.Mutex
	owner := map[netip.Addr]string{}
	for i := range macs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			mac := macN(i)
			for range 3 { // DISCOVER, REQUEST, and a renewal
				ip, err := p.offer(&sub, mac, netip.Addr{})
				if errors.Is(err, ErrPoolExhausted) {
					return
				}
				if err != nil {
					t.Error(err)
					return
				}
				if _, err := p.bind(&sub, mac, ip); errors.Is(err, ErrAddressTaken) {
					continue
				} else if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				if o, ok := owner[ip]; ok && o != mac {
					t.Errorf("%v bound to %s and %s", ip, o, mac)
				}
				owner[ip] = mac
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(owner) != 32 {
		t.Fatalf("%d addresses bound, want all 32", len(owner))
	}
	if err := p.close(); err != nil {
		t.Fatal(err)
	}
	leases, err := ReadLeases(dir)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]netip.Addr{}
	for _, l := range leases {
		if l.State != string(leaseBound) {
			continue
		}
		if owner[l.IP] != l.MAC {
			t.Errorf("journal: %v bound to %s, memory said %s", l.IP, l.MAC, owner[l.IP])
		}
		if other, dup := seen[l.MAC]; dup {
			t.Errorf("journal: %s bound to %v and %v", l.MAC, other, l.IP)
		}
		seen[l.MAC] = l.IP
	}
	if len(seen) != 32 {
		t.Fatalf("journal holds %d bound leases, want 32", len(seen))
	}
}

// BenchmarkLeasePoolDORA measures one pool DISCOVER + REQUEST decision with
// its fsynced journal append, for distinct MACs in a /16 pool:
//
//	go test ./netboot -run '^$' -bench LeasePoolDORA
func BenchmarkLeasePoolDORA(b *testing.B) {
	sub := Subnet{Name: "r01", Prefix: netip.MustParsePrefix("10.0.0.0/16"),
		PoolStart: netip.MustParseAddr("10.0.0.10"), PoolEnd: netip.MustParseAddr("10.0.255.250"), Lease: time.Hour}
	p, err := openLeasePool(b.TempDir(), []Subnet{sub}, func(netip.Addr) bool { return false }, time.Now)
	if err != nil {
		b.Fatal(err)
	}
	defer p.close()
	i := 0
	for b.Loop() {
		mac := fmt.Sprintf("02:52:%02x:%02x:%02x:%02x", byte(i>>24), byte(i>>16), byte(i>>8), byte(i))
		i++
		ip, err := p.offer(&sub, mac, netip.Addr{})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := p.bind(&sub, mac, ip); err != nil {
			b.Fatal(err)
		}
	}
}
