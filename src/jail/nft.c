/* The VM's firewall: one nftables table in the VM's netns, in one transaction,
 * then read back and verified.
 *
 * Table "inet ironclaw_<hash>" (inet: IPv6 is dropped too):
 *   fwd_<hash>  filter/forward, policy drop: established+related replies, and
 *               from tap0 out of up0 only to the allowlist (TCP and UDP to the
 *               port, or any protocol when no port is given). DNS is port 53
 *               like any other: reachable only when listed.
 *   in_<hash>   filter/input, policy drop: the guest may not talk to the netns
 *               itself (its gateway address), only through it.
 *   out_<hash>  filter/output, policy drop: nothing in the netns originates
 *               traffic except loopback and replies.
 *   nat_<hash>  nat/postrouting: masquerade out of up0, so the host needs no
 *               route to the guest and cannot reach it.
 * libnftables applies the whole buffer atomically: either all of it is in
 * place or none. Verification lists the live ruleset as JSON and checks the
 * hooks, types and policies of every base chain, and that ours is the only
 * table there: a table that exists but is not in the traffic path fails. */
#include "jail/jail_internal.h"

#include <errno.h>
#include <jansson.h>
#include <nftables/libnftables.h>
#include <stdio.h>
#include <string.h>

#include "core/buf.h"

#define NFT_RULESET_MAX (64u << 10)

static const char *jail_nft_inject;

void jail_nft_test_inject(const char *rule_text)
{
	jail_nft_inject = rule_text;
}

static int jail_nft_build(const struct jail_names *nm, const struct jail_net_allow *allow, size_t n_allow,
			  struct buf *b)
{
	const struct jail_names n = *nm;
	int rc = buf_printf(b,
			    "table inet %s {\n"
			    " comment \"ironclaw vm %s\"\n"
			    " chain %s {\n"
			    "  type filter hook forward priority 0; policy drop;\n"
			    "  ct state established,related accept\n",
			    n.table, n.id, n.chain_fwd);
	for (size_t i = 0; i < n_allow && !rc; i++) {
		const struct jail_net_allow *a = &allow[i];
		uint32_t mask = a->prefix ? 0xffffffffu << (32 - a->prefix) : 0;
		uint32_t net = a->addr & mask;
		char cidr[24];
		snprintf(cidr, sizeof(cidr), "%u.%u.%u.%u/%u", net >> 24, (net >> 16) & 255, (net >> 8) & 255, net & 255,
			 a->prefix);
		if (a->port)
			rc = buf_printf(b,
					"  iifname \"%s\" oifname \"%s\" ip daddr %s tcp dport %u accept\n"
					"  iifname \"%s\" oifname \"%s\" ip daddr %s udp dport %u accept\n",
					JAIL_NS_TAP, JAIL_NS_VETH, cidr, a->port, JAIL_NS_TAP, JAIL_NS_VETH, cidr, a->port);
		else
			rc = buf_printf(b, "  iifname \"%s\" oifname \"%s\" ip daddr %s accept\n", JAIL_NS_TAP,
					JAIL_NS_VETH, cidr);
	}
	if (!rc && jail_nft_inject)
		rc = buf_printf(b, "  %s\n", jail_nft_inject);
	if (!rc)
		rc = buf_printf(b,
				" }\n"
				" chain %s {\n"
				"  type filter hook input priority 0; policy drop;\n"
				"  iifname \"lo\" accept\n"
				"  ct state established,related accept\n"
				" }\n"
				" chain %s {\n"
				"  type filter hook output priority 0; policy drop;\n"
				"  oifname \"lo\" accept\n"
				"  ct state established,related accept\n"
				" }\n"
				" chain %s {\n"
				"  type nat hook postrouting priority 100; policy accept;\n"
				"  oifname \"%s\" masquerade\n"
				" }\n"
				"}\n",
				n.chain_in, n.chain_out, n.chain_nat, JAIL_NS_VETH);
	return rc;
}

/* The first line of libnftables' error text is the useful one. */
static void jail_nft_first_line(const char *s, char *out, size_t len)
{
	if (!s)
		s = "";
	size_t n = strcspn(s, "\n");
	if (n >= len)
		n = len - 1;
	memcpy(out, s, n);
	out[n] = 0;
}

int jail_nft_apply(const struct jail_names *n, const struct jail_net_allow *allow, size_t n_allow, struct err *e)
{
	struct buf b;
	buf_init(&b, NFT_RULESET_MAX);
	int rc = jail_nft_build(n, allow, n_allow, &b);
	if (rc) {
		buf_free(&b);
		return err_set(e, rc, "building the firewall ruleset: %s", strerror(-rc));
	}
	struct nft_ctx *ctx = nft_ctx_new(NFT_CTX_DEFAULT);
	if (!ctx) {
		buf_free(&b);
		return err_set(e, -ENOMEM, "libnftables: cannot create a context");
	}
	nft_ctx_buffer_output(ctx);
	nft_ctx_buffer_error(ctx);
	if (nft_run_cmd_from_buffer(ctx, (const char *)b.data)) {
		char line[300];
		jail_nft_first_line(nft_ctx_get_error_buffer(ctx), line, sizeof(line));
		rc = err_set(e, -EINVAL, "firewall transaction rejected, no VM started: %s", line);
	}
	nft_ctx_free(ctx);
	buf_free(&b);
	return rc;
}

struct jail_nft_want {
	const char *name, *type, *hook, *policy;
	int seen;
};

static int jail_nft_check_chain(json_t *ch, struct jail_nft_want *want, size_t n_want, const char *table,
				struct err *e)
{
	const char *name = json_string_value(json_object_get(ch, "name"));
	const char *tbl = json_string_value(json_object_get(ch, "table"));
	if (!name || !tbl || strcmp(tbl, table))
		return err_set(e, -EINVAL, "firewall verification: a chain outside table %s is in the VM's netns", table);
	for (size_t i = 0; i < n_want; i++) {
		if (strcmp(name, want[i].name))
			continue;
		const char *type = json_string_value(json_object_get(ch, "type"));
		const char *hook = json_string_value(json_object_get(ch, "hook"));
		const char *policy = json_string_value(json_object_get(ch, "policy"));
		if (!type || !hook || !policy || strcmp(type, want[i].type) || strcmp(hook, want[i].hook) ||
		    strcmp(policy, want[i].policy))
			return err_set(e, -EINVAL,
				       "firewall verification: chain %s is %s/%s policy %s, expected %s hook %s policy %s",
				       name, type ? type : "(no type)", hook ? hook : "(not hooked)",
				       policy ? policy : "(none)", want[i].type, want[i].hook, want[i].policy);
		want[i].seen++;
		return 0;
	}
	return err_set(e, -EINVAL, "firewall verification: unexpected chain %s", name);
}

int jail_nft_verify(const struct jail_names *nm, struct err *e)
{
	const struct jail_names n = *nm;
	struct jail_nft_want want[] = {
		{ n.chain_fwd, "filter", "forward", "drop", 0 },
		{ n.chain_in, "filter", "input", "drop", 0 },
		{ n.chain_out, "filter", "output", "drop", 0 },
		{ n.chain_nat, "nat", "postrouting", "accept", 0 },
	};
	size_t n_want = sizeof(want) / sizeof(want[0]);
	int rc = 0, tables = 0;
	json_t *root = NULL;
	struct nft_ctx *ctx = nft_ctx_new(NFT_CTX_DEFAULT);
	if (!ctx)
		return err_set(e, -ENOMEM, "libnftables: cannot create a context");
	nft_ctx_output_set_flags(ctx, NFT_CTX_OUTPUT_JSON);
	nft_ctx_buffer_output(ctx);
	nft_ctx_buffer_error(ctx);
	if (nft_run_cmd_from_buffer(ctx, "list ruleset")) {
		rc = err_set(e, -EIO, "firewall verification: listing the ruleset failed");
		goto out;
	}
	const char *out = nft_ctx_get_output_buffer(ctx);
	root = json_loadb(out, strnlen(out, NFT_RULESET_MAX * 4), 0, NULL);
	json_t *arr = json_object_get(root, "nftables");
	if (!json_is_array(arr)) {
		rc = err_set(e, -EINVAL, "firewall verification: unreadable ruleset listing");
		goto out;
	}
	size_t i;
	json_t *item;
	json_array_foreach(arr, i, item) {
		json_t *t = json_object_get(item, "table");
		json_t *ch = json_object_get(item, "chain");
		if (t) {
			const char *name = json_string_value(json_object_get(t, "name"));
			const char *fam = json_string_value(json_object_get(t, "family"));
			if (!name || !fam || strcmp(name, n.table) || strcmp(fam, "inet")) {
				rc = err_set(e, -EINVAL, "firewall verification: unexpected table %s %s in the VM's netns",
					     fam ? fam : "?", name ? name : "?");
				goto out;
			}
			tables++;
		} else if (ch && (rc = jail_nft_check_chain(ch, want, n_want, n.table, e))) {
			goto out;
		}
	}
	if (tables != 1) {
		rc = err_set(e, -ENOENT, "firewall verification: table inet %s is not in place", n.table);
		goto out;
	}
	for (i = 0; i < n_want; i++)
		if (want[i].seen != 1) {
			rc = err_set(e, -ENOENT, "firewall verification: base chain %s (%s hook) missing", want[i].name,
				     want[i].hook);
			goto out;
		}
out:
	json_decref(root);
	nft_ctx_free(ctx);
	return rc;
}
