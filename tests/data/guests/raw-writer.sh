#!/bin/sh
# The bench's raw baseline: boots like the real guest (mounts, modules), then
# waits for one byte from the host on the channel port and writes
# $RAW_BYTES zero bytes straight to the port with the same writer the exec
# output bench runs (dd, 64 KiB blocks), and idles. With RAW_DIR=in it reads
# $RAW_BYTES from the port instead (the host -> guest baseline). No agent, no framing: the
# speed of the virtio-serial port itself for this VM shape. The bench appends
# this file as /init to a copy of the default initramfs (see bench/vm_bench.c).
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
while read -r line; do insmod "${line##* }"; done < /etc/ironclaw/modules
port=
while [ -z "$port" ]; do
	for d in /sys/class/virtio-ports/*; do
		[ "$(cat "$d/name" 2>/dev/null)" = org.ironclaw.0 ] && port=/dev/${d##*/}
	done
done
# The port can refuse open (ENXIO) for a moment after its node appears; a
# failed redirection on exec would end this shell, so probe in a subshell.
until (exec 3<>"$port") 2>/dev/null; do :; done
exec 3<>"$port"
dd bs=1 count=1 <&3 >/dev/null 2>&1
if [ "$RAW_DIR" = in ]; then
	# Host -> guest: read $RAW_BYTES from the port (a read returns one
	# receive buffer, hence fullblock), then answer one byte.
	dd bs=65536 count=$((RAW_BYTES / 65536)) iflag=fullblock <&3 >/dev/null 2>&1
	echo d >&3
else
	dd if=/dev/zero bs=65536 count=$((RAW_BYTES / 65536)) >&3 2>/dev/null
fi
exec sleep 100000
