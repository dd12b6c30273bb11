#!/bin/bash
# chassis_control program of the rig's ipmi_sim BMCs: the "chassis" of one
# VM, whose folder is the first argument. ipmi_sim runs it as
#   chassis.sh DIR get power boot     -> prints "power:0|1" and "boot:<device>"
#   chassis.sh DIR set power 1|0      -> start / stop the VM
#   chassis.sh DIR set reset 1        -> restart the VM (stop, then start)
#   chassis.sh DIR set shutdown 1     -> stop the VM
#   chassis.sh DIR set boot <device>  -> next boot device (pxe: network first)
# DIR holds qemu.args (one QEMU argument per line), netns (the network
# namespace the VM's tap lives in), and what this script keeps: qemu.pid,
# bootdev and chassis.log (one line per call, host time first).
D=$1; shift; op=$1; shift
echo "$(date +%s.%N) $op $*" >> "$D/chassis.log"
running() { [ -f "$D/qemu.pid" ] && kill -0 "$(cat "$D/qemu.pid")" 2>/dev/null; }
start_vm() {
	case "$(cat "$D/bootdev" 2>/dev/null)" in pxe) order=nc ;; *) order=c ;; esac
	mapfile -t args < "$D/qemu.args"
	rm -f "$D/qemu.pid"
	# -daemonize detaches QEMU and returns once the VM is set up: ipmi_sim
	# waits for this script, so nothing may keep its pipe open.
	setsid ip netns exec "$(cat "$D/netns")" qemu-system-x86_64 "${args[@]}" \
		-boot "order=$order" -daemonize -pidfile "$D/qemu.pid" \
		</dev/null >>"$D/qemu.log" 2>&1
}
stop_vm() {
	running || return 0
	pid=$(cat "$D/qemu.pid")
	kill "$pid"
	for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
	kill -9 "$pid" 2>/dev/null
	rm -f "$D/qemu.pid"
}
if [ "$op" = get ]; then
	for k in "$@"; do
		case $k in
		power) if running; then echo power:1; else echo power:0; fi ;;
		boot) echo "boot:$(cat "$D/bootdev" 2>/dev/null || echo default)" ;;
		esac
	done
	exit 0
fi
while [ $# -ge 2 ]; do
	k=$1 v=$2; shift 2
	case $k in
	power) if [ "$v" = 1 ]; then running || start_vm; else stop_vm; fi ;;
	reset) stop_vm; start_vm ;;
	shutdown) stop_vm ;;
	boot) echo "$v" > "$D/bootdev" ;;
	esac
done
exit 0
