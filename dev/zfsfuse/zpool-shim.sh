#!/bin/sh
# rackflow dev/CI shim in front of zfs-fuse's `zpool` (installed by package
# github.com/rackflow/rackflow/dev/zfsfuse; production OpenZFS needs none of it).
#
# zfs-fuse 0.7's `zpool get` has neither -H nor -p, which go-zfs's GetZpool
# uses. This answers `zpool get -H|-p props pool...` from the real
# `zpool get all pool`: tab-separated "pool property value source" lines,
# "-" for properties zfs-fuse does not know (readonly, fragmentation,
# freeing, leaked, ...), and with -p sizes such as 1.98G turned into bytes
# (approximate: zfs-fuse prints three significant digits). Every other call
# goes to the real binary unchanged.
REAL=@REAL@

[ "$1" = get ] || exec "$REAL" "$@"
shift

shimmed=
parsable=
OPTIND=1
while getopts ':Hp' c; do
	case $c in
	H) shimmed=1 ;;
	p) shimmed=1 parsable=1 ;;
	*) exec "$REAL" get "$@" ;;
	esac
done
[ -n "$shimmed" ] || exec "$REAL" get "$@"
shift $((OPTIND - 1))
[ $# -ge 2 ] || exec "$REAL" get "$@"
props=$1
shift

for pool in "$@"; do
	table=$("$REAL" get all "$pool") || exit
	printf '%s\n' "$table" | SHIM_PROPS=$props SHIM_POOL=$pool SHIM_BYTES=$parsable awk '
	BEGIN {
		np = split(ENVIRON["SHIM_PROPS"], prop, ",")
		pool = ENVIRON["SHIM_POOL"]
		unit["K"] = 2 ^ 10; unit["M"] = 2 ^ 20; unit["G"] = 2 ^ 30
		unit["T"] = 2 ^ 40; unit["P"] = 2 ^ 50; unit["E"] = 2 ^ 60
	}
	NR > 1 && NF >= 3 { val[$2] = $3; src[$2] = $NF }
	END {
		for (j = 1; j <= np; j++) {
			p = prop[j]; v = "-"; s = "-"
			if (p == "name") v = pool
			else if (p in val) { v = val[p]; s = src[p] }
			if (ENVIRON["SHIM_BYTES"] != "" && v ~ /^[0-9]+(\.[0-9]+)?[KMGTPE]$/)
				v = sprintf("%.0f", substr(v, 1, length(v) - 1) * unit[substr(v, length(v))])
			printf "%s\t%s\t%s\t%s\n", pool, p, v, s
		}
	}'
done
