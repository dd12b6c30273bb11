// Package zfsfuse gives dev machines and CI a real ZFS pool without a ZFS
// kernel module, using zfs-fuse (Debian package "zfs-fuse", version 0.7).
//
// It is a dev/CI helper only. Production hosts run OpenZFS, whose zfs and
// zpool commands go-zfs drives directly: nothing in this package (daemon,
// file-backed pool, PATH shims) is needed or wanted there.
//
// [Ensure] does three things:
//
//  1. starts the machine-wide zfs-fuse daemon (/usr/sbin/zfs-fuse) unless
//     `zpool list` already answers;
//  2. creates, or imports, a pool backed by a sparse file
//     <stateDir>/zfs/pool.img, mounted under <stateDir>/zfs/mnt. The pool is
//     created with cachefile=none, so it lives only in the state dir: after a
//     daemon restart the next Ensure imports it again;
//  3. installs shell shims named zfs and zpool into <stateDir>/zfs/bin.
//     zfs-fuse lacks `zfs list -p` and `zpool get -H/-p`, which go-zfs uses
//     in GetDataset, Snapshot, Clone, Datasets and GetZpool; the shims answer
//     those from `zfs get -Hp` / `zpool get all` and pass every other call to
//     the real binary. go-zfs runs "zfs"/"zpool" from PATH, so the caller puts
//     [Pool.BinDir] first on PATH ([Pool.PrependPath] for this process,
//     [Pool.Env] for a child process).
//
// zfs-fuse needs root (its control socket is /var/run/zfs/zfs_socket, mode
// 0700) and /dev/fuse. The daemon is shared by every process on the machine
// and is left running; pools are told apart by name.
package zfsfuse
