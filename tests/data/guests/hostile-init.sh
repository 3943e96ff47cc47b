#!/bin/sh
# A hostile guest for the fault tests: it boots like the real one (mounts,
# modules), then writes $HOSTILE_PAYLOAD (printf escapes) to the channel port
# instead of speaking the protocol, and idles (never honouring a timeout). The test appends this file as /init
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
# The port can refuse open (ENXIO) for a moment after its node appears; a
# failed redirection on exec would end this shell, so probe in a subshell.
until (exec 3<>"$port") 2>/dev/null; do :; done
exec 3<>"$port"
printf "$HOSTILE_PAYLOAD" >&3
# With $HOSTILE_AFTER_REQUEST (also printf escapes): wait until the host's
# first request starts to arrive, then send it (e.g. a reply to id 1, then
# nothing, or half a frame).
if [ -n "$HOSTILE_AFTER_REQUEST" ]; then
	dd bs=1 count=1 <&3 >/dev/null 2>&1
	printf "$HOSTILE_AFTER_REQUEST" >&3
fi
exec sleep 100000
