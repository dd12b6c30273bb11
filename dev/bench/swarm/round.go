package main

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"time"
)

const (
	methodHTTP  = "http"
	methodSwarm = "swarm"
)

// result is one (method, N) measurement.
type result struct {
	method      string
	n           int
	perClient   []float64     // MB/s (10^6 B/s) of each client, ascending
	last        time.Duration // from "go" until the last client reported
	egress      int64         // bytes the image server's link sent
	seederSent  int64         // of which the seeder's piece data (swarm)
	fromPeers   int64         // piece data all clients got from peers
	fromWeb     int64         // bytes all clients got over HTTP (web seed)
	clientCPU   time.Duration // user + system of all clients
	serverCPU   time.Duration
	hostBusyPct float64 // host-wide CPU busy share during the transfer
}

func (r result) median() float64 { return median(r.perClient) }

// median of an ascending slice (0 for none).
func median(s []float64) float64 {
	switch n := len(s); {
	case n == 0:
		return 0
	case n%2 == 1:
		return s[n/2]
	default:
		return (s[n/2-1] + s[n/2]) / 2
	}
}

// round starts the image server and n clients of method, releases the
// clients at once and waits for every download; then it stops them all.
func round(ctx context.Context, tb *testbed, self, dir, image, digest string, size int64, method string, n int) (res result, err error) {
	res = result{method: method, n: n}
	// Every process of the round dies with this context at the latest.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	srvArgs := []string{"-image", image, "-digest", digest}
	if method == methodSwarm {
		srvArgs = append(srvArgs, "-swarm", "-torrent", filepath.Join(dir, "image.torrent"))
	}
	srv, err := startChild(ctx, "server", tb.server, self, "server", srvArgs...)
	if err != nil {
		return res, err
	}
	defer func() {
		if err == nil {
			// The server writes its totals once its stdin closes.
			_ = srv.stdin.Close()
			var done serverDone
			err = srv.next(ctx, &done)
			res.seederSent = done.SeederSent
		}
		cpu, ferr := srv.finish(15 * time.Second)
		res.serverCPU = cpu
		err = errors.Join(err, ferr)
	}()
	var ready serverReady
	if err := srv.next(ctx, &ready); err != nil {
		return res, err
	}

	clients := make([]*child, 0, n)
	defer func() {
		for _, c := range clients {
			cpu, ferr := c.finish(15 * time.Second)
			res.clientCPU += cpu
			err = errors.Join(err, ferr)
		}
	}()
	for i := range n {
		c, err := startChild(ctx, fmt.Sprintf("client %d", i+1), tb.clients[i], self, "client",
			"-method", method, "-url", ready.URL, "-torrent", ready.Torrent, "-digest", digest,
			"-size", strconv.FormatInt(size, 10), "-out", filepath.Join(dir, fmt.Sprintf("c%02d.img", i+1)))
		if err != nil {
			return res, err
		}
		clients = append(clients, c)
	}
	for _, c := range clients {
		var r struct{ Ready bool }
		if err := c.next(ctx, &r); err != nil {
			return res, err
		}
	}

	tx0, err := txBytes(ctx, tb.server)
	if err != nil {
		return res, err
	}
	busy0, total0 := cpuTimes()
	start := time.Now()
	for _, c := range clients {
		if err := c.send("go"); err != nil {
			return res, fmt.Errorf("%s: %w", c.name, err)
		}
	}
	// Results in order of arrival: the last one read is the last finisher.
	type arrival struct {
		r   clientResult
		err error
	}
	arrivals := make(chan arrival, n)
	for _, c := range clients {
		go func() {
			var r clientResult
			err := c.next(ctx, &r)
			arrivals <- arrival{r, err}
		}()
	}
	for range n {
		a := <-arrivals
		if a.err != nil {
			return res, a.err
		}
		if a.r.Bytes != size {
			return res, fmt.Errorf("a client reported %d bytes, want %d", a.r.Bytes, size)
		}
		res.perClient = append(res.perClient, float64(a.r.Bytes)/a.r.Seconds/1e6)
		res.fromPeers += a.r.FromPeers
		res.fromWeb += a.r.FromWeb
	}
	res.last = time.Since(start)
	busy1, total1 := cpuTimes()
	if total1 > total0 {
		res.hostBusyPct = 100 * float64(busy1-busy0) / float64(total1-total0)
	}
	tx1, err := txBytes(ctx, tb.server)
	if err != nil {
		return res, err
	}
	res.egress = tx1 - tx0
	slices.Sort(res.perClient)
	return res, nil
}
