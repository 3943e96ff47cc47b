#!/bin/sh
# A hostile guest for the fault tests: it boots like the real one (mounts,
# modules), then writes $HOSTILE_PAYLOAD (printf escapes) to the channel port
# instead of speaking the protocol, and idles. The test appends this file as /init
# to a copy of the default initramfs, with the payload baked in below.
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
# Each line is "GROUP PATH" (older images: just PATH); load them all.
while read -r line; do insmod "${line##* }"; done < /etc/ironclaw/modules
port=
while [ -z "$port" ]; do
	for d in /sys/class/virtio-ports/*; do
		[ "$(cat "$d/name" 2>/dev/null)" = org.ironclaw.0 ] && port=/dev/${d##*/}
	done
done
# The port can refuse open (ENXIO) for a moment after its node appears.
until printf "$HOSTILE_PAYLOAD" 2>/dev/null > "$port"; do :; done
exec sleep 100000
