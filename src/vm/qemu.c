/* QEMU microvm command line: see qemu.h.
 *
 * Why each flag:
 *  -M microvm        virtio-mmio only, no PCI or legacy devices: fastest boot.
 *  -nodefaults, -no-user-config   no implicit devices, no host config files.
 *  -display none     no UI; the serial console goes to a per-VM log file.
 *  -no-reboot        a guest reboot/panic (panic=-1) ends QEMU instead of looping.
 *  -cpu max (TCG) / host (KVM)   every feature the accelerator can offer.
 *  tsc_early_khz, no_timer_check  keep a TCG guest from hanging while it
 *                    calibrates its clock on a busy host (DESIGN.md §5).
 *  max_ports=2       virtio-serial defaults to 31 ports, each with two
 *                    virtqueues the guest driver must set up; we use one port
 *                    (port 0 is reserved for a console).
 */
#include "vm/qemu.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

struct argv_builder {
	char **argv;
	size_t argc;
	char *store;
	size_t left;
	int overflow;
};

static void arg_add(struct argv_builder *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void arg_add(struct argv_builder *b, const char *fmt, ...)
{
	if (b->overflow || b->argc + 1 >= QEMU_ARGV_MAX) {
		b->overflow = 1;
		return;
	}
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(b->store, b->left, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= b->left) {
		b->overflow = 1;
		return;
	}
	b->argv[b->argc++] = b->store;
	b->store += n + 1;
	b->left -= (size_t)n + 1;
}

int qemu_build_argv(const struct qemu_spec *s, char **argv, char *storage, size_t storage_len)
{
	struct argv_builder b = { .argv = argv, .store = storage, .left = storage_len };
	int kvm = s->accel == VM_ACCEL_KVM;
	unsigned long tsc = vm_host_tsc_khz();

	arg_add(&b, "%s", QEMU_BINARY);
	arg_add(&b, "-M");
	arg_add(&b, "microvm,rtc=on");
	arg_add(&b, "-accel");
	arg_add(&b, "%s", kvm ? "kvm" : "tcg");
	arg_add(&b, "-cpu");
	/* Under TCG without ERMS: the guest kernel then copies and clears with
	 * rep movsq/stosq (8 bytes a step) instead of rep movsb/stosb, which
	 * TCG runs a byte at a time. Measured: raw port ~290 -> ~800 MB/s, exec
	 * stdin and output ~3x (docs/bench.md, channel throughput). */
	arg_add(&b, "%s", kvm ? "host" : "max,-erms");
	arg_add(&b, "-m");
	arg_add(&b, "%u", s->memory_mib);
	arg_add(&b, "-smp");
	arg_add(&b, "%u", s->cpus);
	arg_add(&b, "-nodefaults");
	arg_add(&b, "-no-user-config");
	arg_add(&b, "-display");
	arg_add(&b, "none");
	arg_add(&b, "-no-reboot");
	arg_add(&b, "-kernel");
	arg_add(&b, "%s", s->kernel);
	arg_add(&b, "-initrd");
	arg_add(&b, "%s", s->initrd);
	arg_add(&b, "-append");
	char tsc_arg[64] = "";
	if (!kvm && tsc)
		snprintf(tsc_arg, sizeof(tsc_arg), " tsc_early_khz=%lu", tsc);
	arg_add(&b, "console=ttyS0 reboot=t panic=-1 quiet no_timer_check%s%s%s", tsc_arg,
		s->cmdline_extra ? " " : "", s->cmdline_extra ? s->cmdline_extra : "");
	arg_add(&b, "-serial");
	arg_add(&b, "file:%s", s->console_path);
	arg_add(&b, "-chardev");
	arg_add(&b, "socket,id=ch0,path=%s,server=on,wait=off", s->channel_path);
	arg_add(&b, "-device");
	arg_add(&b, "virtio-serial-device,max_ports=2");
	arg_add(&b, "-device");
	arg_add(&b, "virtserialport,chardev=ch0,name=org.ironclaw.0");
	arg_add(&b, "-qmp");
	arg_add(&b, "unix:%s,server=on,wait=off", s->qmp_path);
	/* Disks carry serials: the guest finds them by serial (src/guest/root.c),
	 * not by probe order. readonly=on makes QEMU open the image O_RDONLY and
	 * refuse guest writes, and takes a shared lock, so VMs share one file. */
	if (s->root_path) {
		arg_add(&b, "-drive");
		/* file.drop-cache=off: after a restore (vm/template.h) QEMU would
		 * otherwise drop the host's page cache of the image with
		 * fadvise(DONTNEED), a syscall the filter rightly kills, and one
		 * that would evict the pages every other VM of the image shares.
		 * The image is read-only and never written under a VM, so no
		 * stale page can be in that cache. */
		arg_add(&b, "file=%s,if=none,id=root,format=raw,readonly=on,file.drop-cache=off",
			s->root_path);
		arg_add(&b, "-device");
		arg_add(&b, "virtio-blk-device,drive=root,serial=ironclaw-root");
	}
	if (s->scratch_path) {
		arg_add(&b, "-drive");
		arg_add(&b, "file=%s,if=none,id=scratch,format=raw,discard=unmap", s->scratch_path);
		arg_add(&b, "-device");
		arg_add(&b, "virtio-blk-device,drive=scratch,serial=ironclaw-scratch");
	}
	if (s->tap_fd >= 0) {
		arg_add(&b, "-netdev");
		arg_add(&b, "tap,id=n0,fd=%d", s->tap_fd);
		arg_add(&b, "-device");
		arg_add(&b, "virtio-net-device,netdev=n0");
	}
	if (b.overflow)
		return -E2BIG;
	argv[b.argc] = NULL;
	return 0;
}
