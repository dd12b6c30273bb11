package netboot

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// The dynamic pool's leases live in memory, one record per address, and in
// an append-only journal, <DHCPStateDir>/leases.jsonl: one JSON object per
// line, written and fsynced before the ACK that depends on it is sent (as
// ISC dhcpd's leases file). Opening the journal replays it, then rewrites
// it compacted (temp file + fsync + rename); it is compacted again when it
// has grown to many times the live records. A torn last line (a crash in
// mid-append, never acknowledged) is dropped; any other unreadable line
// stops the open with an error naming it, and the file is left untouched.
//
// Offers are held in memory only (offerHold): after a restart a client's
// REQUEST for an offered address is granted if the address is still free.

const (
	leaseFile     = "leases.jsonl"
	leaseLockFile = "leases.lock"
	// offerHold is how long an offered address is kept for its client.
	offerHold = 60 * time.Second
	// DeclineQuarantine is how long an address a client declined (DHCPDECLINE,
	// RFC 2131 §3.1 step 5: in use by another host) is not leased to anyone.
	DeclineQuarantine = time.Hour
	// compactMin is the journal length (lines) below which it is never
	// compacted while open.
	compactMin = 1024
)

// Errors of the lease pool (wrapped).
var (
	// ErrPoolExhausted: every pool address is leased, offered, reserved or
	// quarantined.
	ErrPoolExhausted = errors.New("address pool exhausted")
	// ErrAddressTaken: the address is leased or offered to another MAC,
	// reserved, quarantined, or outside the pool.
	ErrAddressTaken = errors.New("address not available to this client")
)

type leaseState string

const (
	leaseOffered     leaseState = "offered"     // memory only
	leaseBound       leaseState = "bound"       // journal op "bind"
	leaseReleased    leaseState = "released"    // journal op "release": free, remembered for the MAC
	leaseQuarantined leaseState = "quarantined" // journal op "decline"
)

// leaseRecord is one journal line.
type leaseRecord struct {
	Op      string    `json:"op"` // bind, release, decline
	IP      string    `json:"ip"`
	MAC     string    `json:"mac,omitempty"`
	Subnet  string    `json:"subnet,omitempty"`
	Expires time.Time `json:"expires"` // bind: lease end; decline: quarantine end; release: when released
}

// Lease is the state of one pool address (ReadLeases).
type Lease struct {
	IP      netip.Addr `json:"ip"`
	MAC     string     `json:"mac,omitempty"` // "" for a quarantined address
	Subnet  string     `json:"subnet"`
	State   string     `json:"state"`   // offered, bound, released, quarantined
	Expires time.Time  `json:"expires"` // offer or lease end, release time, quarantine end
}

type lease struct {
	ip      netip.Addr
	mac     string
	subnet  string
	state   leaseState
	expires time.Time
}

// active reports whether l keeps its address from every other MAC at now.
func (l *lease) active(now time.Time) bool {
	switch l.state {
	case leaseOffered, leaseBound, leaseQuarantined:
		return now.Before(l.expires)
	}
	return false
}

// leasePool allocates pool addresses and persists leases. It is safe for
// concurrent use; every decision and its journal write happen under one
// mutex, so an address is never handed to two MACs.
type leasePool struct {
	mu       sync.Mutex
	byIP     map[netip.Addr]*lease
	byMAC    map[string]*lease // subnet + "/" + mac → the MAC's record in that subnet
	f        *os.File          // the journal, open for appending
	lock     *os.File          // leases.lock, flocked while the pool is open
	path     string
	lines    int
	reserved func(netip.Addr) bool // reserved for a node of the inventory
	now      func() time.Time
	cursor   map[string]uint32 // per subnet: where the next free-address scan starts
}

// openLeasePool opens (creating) the journal in dir, replays it, keeps the
// records whose address lies in some subnet's pool, and compacts it.
// reserved reports addresses the pool must never hand out.
func openLeasePool(dir string, subs []Subnet, reserved func(netip.Addr) bool, now func() time.Time) (*leasePool, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("lease journal: %w", err)
	}
	p := &leasePool{byIP: map[netip.Addr]*lease{}, byMAC: map[string]*lease{}, path: filepath.Join(dir, leaseFile),
		reserved: reserved, now: now, cursor: map[string]uint32{}}
	lock, err := os.OpenFile(filepath.Join(dir, leaseLockFile), os.O_RDWR|os.O_CREATE, 0o640)
	if err != nil {
		return nil, fmt.Errorf("lease journal: %w", err)
	}
	if err := lockFile(lock); err != nil {
		_ = lock.Close()
		return nil, fmt.Errorf("lease journal %s: %w (is another netboot service using this state directory?)", dir, err)
	}
	p.lock = lock
	fail := func(err error) (*leasePool, error) {
		_ = p.close()
		return nil, err
	}
	data, err := os.ReadFile(p.path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fail(fmt.Errorf("lease journal: %w", err))
	}
	if err := p.replay(data); err != nil {
		return fail(fmt.Errorf("lease journal %s: %w", p.path, err))
	}
	for ip, l := range p.byIP {
		if !inSomePool(subs, ip) {
			p.forget(l)
		}
	}
	if err := p.compact(); err != nil {
		return fail(err)
	}
	return p, nil
}

func inSomePool(subs []Subnet, ip netip.Addr) bool {
	for i := range subs {
		if subs[i].inPool(ip) {
			return true
		}
	}
	return false
}

func (p *leasePool) replay(data []byte) error {
	for n, line := 1, []byte(nil); len(data) > 0; n++ {
		i := bytes.IndexByte(data, '\n')
		torn := i < 0
		if torn {
			line, data = data, nil
		} else {
			line, data = data[:i], data[i+1:]
		}
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		var r leaseRecord
		err := json.Unmarshal(line, &r)
		if err == nil {
			err = p.apply(r)
		}
		if err != nil {
			if torn {
				return nil // a crash in mid-append: never acknowledged
			}
			return fmt.Errorf("line %d: %w", n, err)
		}
	}
	return nil
}

// apply replays one record into memory.
func (p *leasePool) apply(r leaseRecord) error {
	ip, err := netip.ParseAddr(r.IP)
	if err != nil || !ip.Is4() {
		return fmt.Errorf("ip %q is not an IPv4 address", r.IP)
	}
	var st leaseState
	switch r.Op {
	case "bind":
		st = leaseBound
	case "release":
		st = leaseReleased
	case "decline":
		st = leaseQuarantined
	default:
		return fmt.Errorf("unknown op %q", r.Op)
	}
	if st != leaseQuarantined {
		if _, err := CanonicalMAC(r.MAC); err != nil {
			return err
		}
	}
	if old := p.byIP[ip]; old != nil {
		p.forget(old)
	}
	l := &lease{ip: ip, mac: r.MAC, subnet: r.Subnet, state: st, expires: r.Expires}
	p.byIP[ip] = l
	if l.mac != "" {
		if prev := p.byMAC[macKey(l.subnet, l.mac)]; prev != nil && prev != l {
			// The MAC moved to another address: its old record stays for the
			// address's sake but no longer belongs to the MAC.
			prev.mac = ""
			if prev.state != leaseQuarantined {
				prev.state = leaseReleased
			}
		}
		p.byMAC[macKey(l.subnet, l.mac)] = l
	}
	return nil
}

func macKey(subnet, mac string) string { return subnet + "/" + mac }

func (p *leasePool) forget(l *lease) {
	delete(p.byIP, l.ip)
	if l.mac != "" && p.byMAC[macKey(l.subnet, l.mac)] == l {
		delete(p.byMAC, macKey(l.subnet, l.mac))
	}
}

// record turns an in-memory lease into its journal line.
func (l *lease) record() (leaseRecord, bool) {
	r := leaseRecord{IP: l.ip.String(), MAC: l.mac, Subnet: l.subnet, Expires: l.expires.UTC()}
	switch l.state {
	case leaseBound:
		r.Op = "bind"
	case leaseReleased:
		r.Op = "release"
	case leaseQuarantined:
		r.Op = "decline"
	default:
		return r, false // offers are not persisted
	}
	return r, true
}

// compact rewrites the journal as one line per persisted record and
// reopens it for appending.
func (p *leasePool) compact() error {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	lines := 0
	for _, l := range p.byIP {
		if r, ok := l.record(); ok && (r.MAC != "" || l.state == leaseQuarantined) {
			if err := enc.Encode(r); err != nil {
				return fmt.Errorf("lease journal: %w", err)
			}
			lines++
		}
	}
	if p.f != nil {
		_ = p.f.Close()
		p.f = nil
	}
	if err := writeFileAtomic(p.path, buf.Bytes(), 0o640); err != nil {
		return fmt.Errorf("lease journal: compact: %w", err)
	}
	f, err := os.OpenFile(p.path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return fmt.Errorf("lease journal: %w", err)
	}
	p.f, p.lines = f, lines
	return nil
}

// persist appends r and fsyncs; the caller changes memory only after it
// succeeds.
func (p *leasePool) persist(r leaseRecord) error {
	if p.f == nil {
		return errors.New("lease journal is closed")
	}
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	if _, err := p.f.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("lease journal: %w", err)
	}
	if err := p.f.Sync(); err != nil {
		return fmt.Errorf("lease journal: %w", err)
	}
	p.lines++
	return nil
}

// maybeCompact compacts a journal grown past 4× its live records.
func (p *leasePool) maybeCompact() error {
	if p.lines < compactMin || p.lines < 4*len(p.byIP) {
		return nil
	}
	return p.compact()
}

func (p *leasePool) close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	var errs []error
	if p.f != nil {
		errs = append(errs, p.f.Close())
		p.f = nil
	}
	if p.lock != nil {
		errs = append(errs, p.lock.Close()) // closing releases the flock
		p.lock = nil
	}
	return errors.Join(errs...)
}

// availableTo reports whether ip may go to mac in sub now.
func (p *leasePool) availableTo(sub *Subnet, mac string, ip netip.Addr, now time.Time) bool {
	if !sub.inPool(ip) || p.reserved(ip) {
		return false
	}
	l := p.byIP[ip]
	return l == nil || l.mac == mac && l.state != leaseQuarantined || !l.active(now)
}

// offer picks the address to offer mac in sub (RFC 2131 §4.3.1): the MAC's
// current or previous address, else the requested one (option 50), else a
// never-used address, else the one free longest. It holds the address for
// offerHold. Errors wrap ErrPoolExhausted.
func (p *leasePool) offer(sub *Subnet, mac string, requested netip.Addr) (netip.Addr, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.now()
	ip, ok := p.pick(sub, mac, requested, now)
	if !ok {
		return netip.Addr{}, fmt.Errorf("%s %v-%v: %w", sub.Name, sub.PoolStart, sub.PoolEnd, ErrPoolExhausted)
	}
	l := p.byIP[ip]
	if l != nil && l.mac == mac && l.state == leaseBound && l.active(now) {
		return ip, nil // already bound: the offer is the lease
	}
	p.take(&lease{ip: ip, mac: mac, subnet: sub.Name, state: leaseOffered, expires: now.Add(offerHold)})
	return ip, nil
}

func (p *leasePool) pick(sub *Subnet, mac string, requested netip.Addr, now time.Time) (netip.Addr, bool) {
	if l := p.byMAC[macKey(sub.Name, mac)]; l != nil && p.availableTo(sub, mac, l.ip, now) {
		return l.ip, true
	}
	if requested.IsValid() && p.availableTo(sub, mac, requested, now) {
		return requested, true
	}
	start, end := be32(sub.PoolStart.As4()), be32(sub.PoolEnd.As4())
	size := end - start + 1
	cur := p.cursor[sub.Name] % size
	var oldest *lease
	for i := uint32(0); i < size; i++ {
		ip := addrFrom32(start + (cur+i)%size)
		if p.reserved(ip) {
			continue
		}
		l := p.byIP[ip]
		if l == nil {
			p.cursor[sub.Name] = (cur + i + 1) % size
			return ip, true
		}
		if !l.active(now) && (oldest == nil || l.expires.Before(oldest.expires)) {
			oldest = l
		}
	}
	if oldest != nil {
		return oldest.ip, true
	}
	return netip.Addr{}, false
}

// take installs l as the record of its address and of its MAC.
func (p *leasePool) take(l *lease) {
	if old := p.byIP[l.ip]; old != nil {
		p.forget(old)
	}
	if prev := p.byMAC[macKey(l.subnet, l.mac)]; prev != nil && prev.ip != l.ip {
		if prev.state == leaseOffered {
			p.forget(prev)
		} else if prev.state == leaseBound {
			prev.state, prev.expires = leaseReleased, p.now()
		}
		delete(p.byMAC, macKey(l.subnet, l.mac))
	}
	p.byIP[l.ip] = l
	p.byMAC[macKey(l.subnet, l.mac)] = l
}

// bind leases ip to mac in sub for sub's lease time (a REQUEST in any
// state, RFC 2131 §4.3.2), journalled before it returns. Errors wrap
// ErrAddressTaken, or are journal errors (then nothing changed).
func (p *leasePool) bind(sub *Subnet, mac string, ip netip.Addr) (time.Time, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.now()
	if !p.availableTo(sub, mac, ip, now) {
		return time.Time{}, fmt.Errorf("%v: %w", ip, ErrAddressTaken)
	}
	l := &lease{ip: ip, mac: mac, subnet: sub.Name, state: leaseBound, expires: now.Add(sub.lease())}
	r, _ := l.record()
	if err := p.persist(r); err != nil {
		return time.Time{}, err
	}
	if prev := p.byMAC[macKey(sub.Name, mac)]; prev != nil && prev.ip != ip && prev.state == leaseBound && prev.active(now) {
		// The MAC leaves its old address: journal that too, so a replay
		// does not see one MAC on two addresses.
		pr := leaseRecord{Op: "release", IP: prev.ip.String(), MAC: mac, Subnet: sub.Name, Expires: now.UTC()}
		if err := p.persist(pr); err != nil {
			return time.Time{}, err
		}
	}
	p.take(l)
	return l.expires, p.maybeCompact()
}

// heldBy returns the lease of ip in sub if mac holds it (bound or
// offered), else nil. p.mu must be held.
func (p *leasePool) heldBy(sub *Subnet, mac string, ip netip.Addr) *lease {
	l := p.byIP[ip]
	if l == nil || l.mac != mac || l.subnet != sub.Name || (l.state != leaseBound && l.state != leaseOffered) {
		return nil
	}
	return l
}

// release frees mac's lease on ip (DHCPRELEASE, RFC 2131 §4.4.6); the
// address is remembered for the MAC. It reports whether there was such a
// lease.
func (p *leasePool) release(sub *Subnet, mac string, ip netip.Addr) (bool, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	l := p.heldBy(sub, mac, ip)
	if l == nil {
		return false, nil
	}
	now := p.now()
	if err := p.persist(leaseRecord{Op: "release", IP: ip.String(), MAC: mac, Subnet: sub.Name, Expires: now.UTC()}); err != nil {
		return false, err
	}
	l.state, l.expires = leaseReleased, now
	return true, p.maybeCompact()
}

// decline quarantines ip, offered or leased to mac, for DeclineQuarantine
// (DHCPDECLINE, RFC 2131 §4.3.3: the client found it in use). It reports
// whether mac held the address.
func (p *leasePool) decline(sub *Subnet, mac string, ip netip.Addr) (bool, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	l := p.heldBy(sub, mac, ip)
	if l == nil {
		return false, nil
	}
	now := p.now()
	q := &lease{ip: ip, subnet: sub.Name, state: leaseQuarantined, expires: now.Add(DeclineQuarantine)}
	r, _ := q.record()
	if err := p.persist(r); err != nil {
		return false, err
	}
	p.forget(l)
	p.byIP[ip] = q
	return true, p.maybeCompact()
}

// holder returns the MAC holding ip (offered or leased) now, "" when none.
func (p *leasePool) holder(ip netip.Addr) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	if l := p.byIP[ip]; l != nil && l.active(p.now()) {
		return l.mac
	}
	return ""
}

// leaseOf returns mac's active bound lease in sub, if any.
func (p *leasePool) leaseOf(sub *Subnet, mac string) (netip.Addr, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	l := p.byMAC[macKey(sub.Name, mac)]
	if l == nil || l.state != leaseBound || !l.active(p.now()) {
		return netip.Addr{}, false
	}
	return l.ip, true
}

// Leases lists every address record, unordered.
func (p *leasePool) Leases() []Lease {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]Lease, 0, len(p.byIP))
	for _, l := range p.byIP {
		out = append(out, Lease{IP: l.ip, MAC: l.mac, Subnet: l.subnet, State: string(l.state), Expires: l.expires})
	}
	return out
}

// ReadLeases reads the lease journal of a DHCP state directory without
// opening it for writing (rackflow discovered, status tools): the last
// record of every address. A missing journal is no leases.
func ReadLeases(dir string) ([]Lease, error) {
	p := &leasePool{byIP: map[netip.Addr]*lease{}, byMAC: map[string]*lease{}}
	f, err := os.Open(filepath.Join(dir, leaseFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read leases: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(bufio.NewReader(f))
	if err != nil {
		return nil, fmt.Errorf("read leases: %w", err)
	}
	if err := p.replay(data); err != nil {
		return nil, fmt.Errorf("read leases %s: %w", f.Name(), err)
	}
	return p.Leases(), nil
}
