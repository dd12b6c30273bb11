// Package netboot holds rackflow's network boot services: a DHCPv4 server
// (reservations, dynamic pools with a journalled lease store, relay agents,
// proxyDHCP, discovery of unknown MACs), a read-only TFTP server, and an
// HTTP server that renders iPXE scripts per MAC from a file-backed
// boot-profile store (and a discovery script for unknown MACs), serves boot
// artifacts and per-node image exports with Range support, and accepts
// authenticated agent check-ins that it hands to a Signaler.
//
// The package knows nothing of Temporal: a verified check-in is passed to the
// Signaler it is given (implemented by package starter).
//
// TFTP uses github.com/pin/tftp/v3 v3.1.0, which negotiates blksize and
// tsize but has no RFC 7440 windowsize: every block is acknowledged.
//
// Every Service has its own Prometheus registry, served at GET /metrics
// (see instruments), and logs with log/slog; the lines of a request name
// the MAC, node and rack behind it when known (from the reservation, or
// from the address the service acknowledged over DHCP — see clientTable).
//
// Service bundles the three servers; Store, AgentArgs, MintToken/VerifyToken
// are used by the activities that prepare a node's boot.
package netboot
