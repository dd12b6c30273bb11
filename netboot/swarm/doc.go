// Package swarm distributes disk images over BitTorrent (BEP 3) with HTTP
// web seeds (BEP 19), after HaDeS (aria2 pulling from the image server
// and from peers): the image server's seeder sends each piece to a few
// nodes, the nodes share pieces among themselves, so per-node throughput
// stays flat as the node count grows where plain HTTP from one server
// falls as 1/N. Two departures, both measured with bench:swarm: a node
// keeps at most 4 requests outstanding at the seeder (deep queues there
// fill its uplink with pieces the node then gets from peers first), and
// the web seed is a fallback for a node that gets no new piece for 5 s
// (Options.WebSeedStall), not a source from the start as in aria2.
//
// It wraps github.com/anacrolix/torrent v1.59.1:
//
//   - [Build] hashes an image file into a single-file v1 info dictionary
//     (piece length from metainfo.ChoosePieceLength: 1024–2048 pieces, at
//     least 16 KiB); [NewMetaInfo] adds the announce URL and the web seed;
//   - [Seeder] seeds image files by node (several nodes of one image version
//     share one torrent) from a client that only accepts connections;
//   - [Leecher] downloads a torrent onto any io.ReaderAt+io.WriterAt (a
//     disk, a buffer), verifying every piece's SHA-1, then keeps seeding;
//   - [Tracker] is an in-memory peer store behind the library's HTTP
//     announce handler (tracker/http/server).
//
// Every client is confined to the rack: no DHT, no PEX, no WebTorrent (no
// STUN), no UPnP/NAT-PMP port mapping, no uTP, TCP on the configured
// address only. Peers come from the tracker alone.
package swarm
