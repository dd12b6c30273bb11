#!/bin/sh
# /init of the rackflow QEMU rig's node environment (busybox): mount the
# kernel filesystems, load the NIC, disk and USB drivers, run rackflow-agent
# with the boot profile's kernel arguments, then idle: PID 1 must not exit,
# and the node is powered off through its BMC.
export PATH=/bin:/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
echo "rackflow-init: [$(cut -d' ' -f1 /proc/uptime)] loading @MODULES@"
modprobe -a @MODULES@
ip link set lo up
/bin/rackflow-agent
echo "rackflow-init: [$(cut -d' ' -f1 /proc/uptime)] rackflow-agent exited with status $?; idle"
while :; do sleep 3600; done
