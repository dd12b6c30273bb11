// Package swarm distributes disk images over BitTorrent (BEP 3) with HTTP
// web seeds (BEP 19), the scheme of HaDeS (aria2 pulling from the image
// server over HTTP and from peers at once): a few nodes read from the image
// server, the others share pieces, so per-node throughput stays flat as the
// node count grows where plain HTTP from one server falls as 1/N.
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
