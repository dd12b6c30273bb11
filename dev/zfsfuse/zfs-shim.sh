#!/bin/sh
# rackflow dev/CI shim in front of zfs-fuse's `zfs` (installed by package
# github.com/rackflow/rackflow/dev/zfsfuse; production OpenZFS needs none of it).
#
# zfs-fuse 0.7 has no `zfs list -p`, which go-zfs uses for every dataset
# lookup. This answers `zfs list -p [-H] [-r] [-d N] [-t types] [-s|-S prop]
# [-o props] [name...]` with one `zfs list -H -o name` (same selection and
# order) and one `zfs get -Hp` (exact numbers), printing "-" for properties
# zfs-fuse does not know (written, logicalused, logicalreferenced).
# Output is always header-less and tab-separated. Every other call goes to
# the real binary unchanged.
REAL=@REAL@

[ "$1" = list ] || exec "$REAL" "$@"
shift

parsable=
props=name,used,available,referenced,mountpoint
sel=
OPTIND=1
while getopts ':Hpro:t:d:s:S:' c; do
	case $c in
	p) parsable=1 ;;
	H) ;;
	r) sel="$sel -r" ;;
	o) props=$OPTARG ;;
	t | d | s | S) sel="$sel -$c $OPTARG" ;;
	*) exec "$REAL" list "$@" ;;
	esac
done
[ -n "$parsable" ] || exec "$REAL" list "$@"
shift $((OPTIND - 1))
for a in "$@"; do
	case $a in -*) exec "$REAL" list "$@" ;; esac
done

set -f # option values and dataset names hold no glob or blank characters
# shellcheck disable=SC2086 # $sel is split on purpose
names=$("$REAL" list -H -o name $sel "$@") || exit
[ -n "$names" ] || exit 0

have=
oldifs=$IFS
IFS=,
for p in $props; do
	case $p in
	name | written | logicalused | logicalreferenced) ;;
	*) have="$have${have:+,}$p" ;;
	esac
done
IFS=$oldifs

values=
if [ -n "$have" ]; then
	# shellcheck disable=SC2086 # one word per dataset name
	values=$("$REAL" get -Hp -o name,property,value "$have" $names) || exit
fi

printf '%s\n' "$values" | SHIM_PROPS=$props SHIM_NAMES=$names awk '
BEGIN {
	FS = "\t"
	np = split(ENVIRON["SHIM_PROPS"], prop, ",")
	nn = split(ENVIRON["SHIM_NAMES"], name, "\n")
}
NF >= 3 { v[$1, $2] = substr($0, length($1) + length($2) + 3) }
END {
	for (i = 1; i <= nn; i++) {
		line = ""
		for (j = 1; j <= np; j++) {
			if (prop[j] == "name") x = name[i]
			else if ((name[i], prop[j]) in v) x = v[name[i], prop[j]]
			else x = "-"
			line = line (j > 1 ? "\t" : "") x
		}
		print line
	}
}'
