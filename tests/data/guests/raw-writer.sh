#!/bin/sh
# The bench's raw baseline: boots like the real guest (mounts, modules), then
# hands over to /raw-port (bench/guest/raw_port.c, static), which opens the
# channel port once, waits for one byte from the host and writes $RAW_BYTES
# zero bytes straight to the port, or with RAW_DIR=in reads $RAW_BYTES from it
# and answers one byte (the host -> guest baseline). No agent, no framing, no
# pipe: the speed of the virtio-serial port itself for this VM shape. The
# bench appends this file as /init, and raw-port beside it, to a copy of the
# default initramfs (see bench/lib/benchlib.c).
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
while read -r line; do insmod "${line##* }"; done < /etc/ironclaw/modules
exec /raw-port "$RAW_DIR" "$RAW_BYTES" </dev/console >/dev/console 2>&1
