/* The guest's kernel command line options (src/guest/cmdline.c). The guest is
 * its own static binary, not part of libironclaw.a, so the one file under test
 * is compiled in here. */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "guest/cmdline.c"

Test(guest_cmdline, finds_the_options_among_others)
{
	struct guest_boot_opts o;
	cr_assert_eq(guest_boot_parse_cmdline("console=ttyS0 reboot=t ironclaw.ip=10.0.0.2/24 quiet "
					      "ironclaw.gw=10.0.0.1\n", &o), 0);
	cr_assert_str_eq(o.ip, "10.0.0.2/24");
	cr_assert_str_eq(o.gw, "10.0.0.1");
	cr_assert_eq(o.poweroff, 0);
	cr_assert_eq(guest_boot_parse_cmdline("ironclaw.poweroff=1", &o), 0);
	cr_assert_eq(o.poweroff, 1);
	cr_assert_str_eq(o.ip, "");
	cr_assert_eq(guest_boot_parse_cmdline("ironclaw.poweroff=0 xironclaw.ip=1.2.3.4/8", &o), 0);
	cr_assert_eq(o.poweroff, 0);
	cr_assert_str_eq(o.ip, "", "a longer word that merely contains the key is not the key");
	cr_assert_eq(guest_boot_parse_cmdline("ironclaw.ip=fd00::2/64\tironclaw.gw=fd00::1", &o), 0);
	cr_assert_str_eq(o.ip, "fd00::2/64");
	cr_assert_str_eq(o.gw, "fd00::1");
	cr_assert_eq(guest_boot_parse_cmdline("", &o), 0);
}

Test(guest_cmdline, refuses_values_that_are_not_addresses)
{
	struct guest_boot_opts o;
	const char *bad[] = {
		"ironclaw.ip=10.0.0.2",               /* no prefix */
		"ironclaw.ip=10.0.0.2/24/8",          /* two slashes */
		"ironclaw.ip=10.0.0.2/24;reboot",     /* shell-ish */
		"ironclaw.ip=$(id)/24",
		"ironclaw.gw=10.0.0.1/24",            /* gateway with a prefix */
		"ironclaw.gw=gw.example",
		"ironclaw.ip=1111111111111111111111111111111111111111111111111111111111111111111/24",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		cr_assert_eq(guest_boot_parse_cmdline(bad[i], &o), -EINVAL, "accepted: %s", bad[i]);
}
