/* Contract: every request the Firecracker client sends (vm/fc_api.c), checked
 * against Firecracker's own OpenAPI 2.0 spec, read from
 * $IRONCLAW_ROOT/../shared/reference/firecracker-swagger.yaml (CI puts shared/
 * beside the clone; the spec is never copied into the project).
 *
 * The validator is small on purpose: it knows what this spec uses. A path
 * template ("/drives/{drive_id}") must match the path, the method must exist
 * under it, the body parameter's schema ($ref into definitions) must accept
 * the body: required fields present, no unknown fields (unless the schema says
 * additionalProperties), types (string, integer, boolean, object, array),
 * enums, minimum and maximum, nested $refs. libyaml (Debian's) parses the
 * file; it is test-only. */
#include <criterion/criterion.h>
#include <stdarg.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "vm/fc_api.h"

static yaml_document_t spec;
static int spec_loaded;

static yaml_node_t *ynode(int idx)
{
	return yaml_document_get_node(&spec, idx);
}

static const char *yscalar(yaml_node_t *n)
{
	return n && n->type == YAML_SCALAR_NODE ? (const char *)n->data.scalar.value : NULL;
}

static yaml_node_t *yget(yaml_node_t *map, const char *key)
{
	if (!map || map->type != YAML_MAPPING_NODE)
		return NULL;
	for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top; p++) {
		const char *k = yscalar(ynode(p->key));
		if (k && !strcmp(k, key))
			return ynode(p->value);
	}
	return NULL;
}

static void spec_load(void)
{
	if (spec_loaded)
		return;
	const char *root = getenv("IRONCLAW_ROOT") ? getenv("IRONCLAW_ROOT") : ".";
	char path[4096];
	snprintf(path, sizeof(path), "%s/../shared/reference/firecracker-swagger.yaml", root);
	FILE *f = fopen(path, "r");
	cr_assert(f, "cannot open %s (CI puts shared/ beside the clone; set IRONCLAW_ROOT)", path);
	yaml_parser_t p;
	yaml_parser_initialize(&p);
	yaml_parser_set_input_file(&p, f);
	cr_assert(yaml_parser_load(&p, &spec), "%s does not parse: %s", path, p.problem);
	yaml_parser_delete(&p);
	fclose(f);
	spec_loaded = 1;
}

static void spec_unload(void)
{
	if (spec_loaded)
		yaml_document_delete(&spec);
	spec_loaded = 0;
}

static yaml_node_t *spec_resolve(yaml_node_t *schema)
{
	const char *ref = yscalar(yget(schema, "$ref"));
	if (!ref)
		return schema;
	cr_assert(!strncmp(ref, "#/definitions/", 14), "unexpected $ref %s", ref);
	yaml_node_t *d = yget(yget(ynode(1), "definitions"), ref + 14);
	cr_assert(d, "spec has no definition %s", ref);
	return d;
}

static int tmpl_match(const char *tmpl, const char *path)
{
	while (*tmpl && *path) {
		if (*tmpl == '{') {
			tmpl = strchr(tmpl, '}');
			if (!tmpl)
				return 0;
			tmpl++;
			while (*path && *path != '/')
				path++;
			continue;
		}
		if (*tmpl++ != *path++)
			return 0;
	}
	return !*tmpl && !*path;
}

/* Appends a violation to why (returns 0) or returns 1. */
static int check_value(yaml_node_t *schema, json_t *v, const char *where, char *why, size_t cap);

static int fail(char *why, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(char *why, size_t cap, const char *fmt, ...)
{
	size_t n = strlen(why);
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why + n, cap - n, fmt, ap);
	va_end(ap);
	return 0;
}

static int check_object(yaml_node_t *schema, json_t *v, const char *where, char *why, size_t cap)
{
	yaml_node_t *props = yget(schema, "properties");
	yaml_node_t *req = yget(schema, "required");
	if (req && req->type == YAML_SEQUENCE_NODE)
		for (yaml_node_item_t *i = req->data.sequence.items.start; i < req->data.sequence.items.top; i++)
			if (!json_object_get(v, yscalar(ynode(*i))))
				return fail(why, cap, "%s: required field %s missing; ", where, yscalar(ynode(*i)));
	yaml_node_t *addl = yget(schema, "additionalProperties");
	const char *k;
	json_t *val;
	int ok = 1;
	json_object_foreach(v, k, val) {
		yaml_node_t *ps = yget(props, k);
		char sub[256];
		snprintf(sub, sizeof(sub), "%s.%s", where, k);
		if (!ps && !addl) {
			ok = fail(why, cap, "%s: unknown field %s; ", where, k);
			continue;
		}
		ok &= check_value(ps ? ps : addl, val, sub, why, cap);
	}
	return ok;
}

static int check_value(yaml_node_t *schema, json_t *v, const char *where, char *why, size_t cap)
{
	schema = spec_resolve(schema);
	const char *type = yscalar(yget(schema, "type"));
	if (!type && yget(schema, "properties"))
		type = "object";
	cr_assert(type, "%s: schema without a type", where);
	if (!strcmp(type, "object")) {
		if (!json_is_object(v))
			return fail(why, cap, "%s: not an %s; ", where, "object");
		return check_object(schema, v, where, why, cap);
	}
	if (!strcmp(type, "array")) {
		if (!json_is_array(v))
			return fail(why, cap, "%s: not an %s; ", where, "array");
		size_t i;
		json_t *it;
		int ok = 1;
		json_array_foreach(v, i, it) ok &= check_value(yget(schema, "items"), it, where, why, cap);
		return ok;
	}
	if (!strcmp(type, "boolean"))
		return json_is_boolean(v) ? 1 : fail(why, cap, "%s: not a %s; ", where, "boolean");
	if (!strcmp(type, "integer")) {
		if (!json_is_integer(v))
			return fail(why, cap, "%s: not an %s; ", where, "integer");
		const char *mn = yscalar(yget(schema, "minimum")), *mx = yscalar(yget(schema, "maximum"));
		if (mn && json_integer_value(v) < atoll(mn))
			return fail(why, cap, "%s: below minimum %s; ", where, mn);
		if (mx && json_integer_value(v) > atoll(mx))
			return fail(why, cap, "%s: above maximum %s; ", where, mx);
		return 1;
	}
	if (!strcmp(type, "string")) {
		if (!json_is_string(v))
			return fail(why, cap, "%s: not a %s; ", where, "string");
		yaml_node_t *en = yget(schema, "enum");
		if (!en)
			return 1;
		for (yaml_node_item_t *i = en->data.sequence.items.start; i < en->data.sequence.items.top; i++)
			if (!strcmp(yscalar(ynode(*i)), json_string_value(v)))
				return 1;
		return fail(why, cap, "%s: %s is not in the enum; ", where, json_string_value(v));
	}
	cr_assert_fail("%s: type %s not handled by the validator", where, type);
	return 0;
}

/* 1 when the spec accepts the request; why says what it rejects. */
static int spec_accepts(const struct fc_api_req *r, char *why, size_t cap)
{
	spec_load();
	why[0] = '\0';
	yaml_node_t *paths = yget(ynode(1), "paths"), *item = NULL;
	for (yaml_node_pair_t *p = paths->data.mapping.pairs.start; p < paths->data.mapping.pairs.top; p++)
		if (tmpl_match(yscalar(ynode(p->key)), r->path))
			item = ynode(p->value);
	if (!item)
		return fail(why, cap, "%s%s: no such path in the spec; ", "", r->path);
	char m[8];
	size_t i;
	for (i = 0; r->method[i] && i < sizeof(m) - 1; i++)
		m[i] = (char)(r->method[i] | 0x20);
	m[i] = '\0';
	yaml_node_t *op = yget(item, m);
	if (!op)
		return fail(why, cap, "%s: no %s in the spec; ", r->path, r->method);
	yaml_node_t *params = yget(op, "parameters"), *body = NULL;
	if (params)
		for (yaml_node_item_t *it = params->data.sequence.items.start; it < params->data.sequence.items.top; it++)
			if (!strcmp(yscalar(yget(ynode(*it), "in")), "body"))
				body = ynode(*it);
	if (!body)
		return r->body ? fail(why, cap, "%s: the spec takes no body%s; ", r->path, "") : 1;
	if (!r->body)
		return fail(why, cap, "%s: the spec requires a body%s; ", r->path, "");
	return check_value(yget(body, "schema"), r->body, r->path, why, cap);
}

static void check_all(struct fc_api_req *r, size_t n)
{
	char why[2048];
	for (size_t i = 0; i < n; i++) {
		char *s = json_dumps(r[i].body, JSON_COMPACT);
		cr_expect(spec_accepts(&r[i], why, sizeof(why)), "%s %s %s: %s", r[i].method, r[i].path, s, why);
		free(s);
	}
}

static void path_list(const struct fc_api_req *r, size_t n, char *out, size_t cap)
{
	out[0] = '\0';
	for (size_t i = 0; i < n; i++) {
		size_t l = strlen(out);
		snprintf(out + l, cap - l, "%s%s %s", i ? ", " : "", r[i].method, r[i].path);
	}
}

TestSuite(fc_contract, .fini = spec_unload);

Test(fc_contract, boot_sequence_in_the_documented_order_and_accepted_by_the_spec)
{
	struct fc_boot_config c = {
		.log_path = "/run/vm/console.log", .metrics_path = "/run/vm/metrics.json",
		.vcpus = 2, .mem_mib = 256, .kernel = "/vm/kernel", .initrd = "/vm/initramfs.cpio",
		.boot_args = "console=ttyS0 ironclaw.vsock=52", .rootfs = "/vm/rootfs.ext4",
		.rootfs_read_only = 1, .guest_cid = 3, .vsock_uds = "/run/vm/v.sock", .tap_name = "tap0", .guest_mac = "06:fc:00:11:22:33",
	};
	struct fc_api_req r[FC_API_SEQ_MAX];
	size_t n;
	struct err e = { 0 };
	cr_assert_eq(fc_api_boot_sequence(&c, r, &n, &e), 0, "%s", e.msg);
	char order[512];
	path_list(r, n, order, sizeof(order));
	cr_expect_str_eq(order, "PUT /logger, PUT /metrics, PUT /machine-config, PUT /boot-source, "
				"PUT /drives/rootfs, PUT /vsock, PUT /network-interfaces/eth0, PUT /entropy, "
				"PUT /actions");
	cr_expect(json_is_true(json_object_get(r[4].body, "is_read_only")), "a shared image is read-only");
	check_all(r, n);
	fc_api_reqs_free(r, n);

	/* Without a drive or a NIC neither request is made. */
	c.rootfs = NULL;
	c.tap_name = NULL;
	c.initrd = NULL;
	cr_assert_eq(fc_api_boot_sequence(&c, r, &n, &e), 0, "%s", e.msg);
	path_list(r, n, order, sizeof(order));
	cr_expect_str_eq(order, "PUT /logger, PUT /metrics, PUT /machine-config, PUT /boot-source, "
				"PUT /vsock, PUT /entropy, PUT /actions");
	check_all(r, n);
	fc_api_reqs_free(r, n);
}

Test(fc_contract, restore_loads_the_snapshot_first_with_mem_backend_and_resume)
{
	struct fc_restore_config c = {
		.log_path = "/run/vm/console.log", .metrics_path = "/run/vm/metrics.json",
		.snapshot_path = "/run/vm/snap/vmstate", .mem_path = "/run/vm/snap/mem",
		.vsock_uds = "/run/vm/v.sock",
	};
	struct fc_api_req r[FC_API_SEQ_MAX];
	size_t n;
	struct err e = { 0 };
	cr_assert_eq(fc_api_restore_sequence(&c, r, &n, &e), 0, "%s", e.msg);
	char order[512];
	path_list(r, n, order, sizeof(order));
	/* The spec: only Logger and Metrics may come before a load. */
	cr_expect_str_eq(order, "PUT /logger, PUT /metrics, PUT /snapshot/load");
	cr_expect(json_is_true(json_object_get(r[2].body, "resume_vm")));
	cr_expect_null(json_object_get(r[2].body, "mem_file_path"), "mem_backend, not the deprecated field");
	cr_expect_str_eq(json_string_value(json_object_get(json_object_get(r[2].body, "mem_backend"),
							   "backend_type")), "File");
	check_all(r, n);
	fc_api_reqs_free(r, n);
}

Test(fc_contract, pause_resume_snapshot_create_and_ctrl_alt_del_are_accepted)
{
	struct fc_api_req r[4];
	cr_assert_eq(fc_api_req_vm_state(&r[0], 1), 0);
	cr_assert_eq(fc_api_req_vm_state(&r[1], 0), 0);
	cr_assert_eq(fc_api_req_snapshot_create(&r[2], "/run/vm/snap/vmstate", "/run/vm/snap/mem"), 0);
	cr_assert_eq(fc_api_req_ctrl_alt_del(&r[3]), 0);
	cr_expect_str_eq(r[0].method, "PATCH");
	cr_expect_str_eq(json_string_value(json_object_get(r[0].body, "state")), "Paused");
	cr_expect_str_eq(json_string_value(json_object_get(r[1].body, "state")), "Resumed");
	check_all(r, 4);
	fc_api_reqs_free(r, 4);
}

/* The validator itself must reject what the spec forbids, or the tests above
 * prove nothing. */
Test(fc_contract, the_validator_rejects_unknown_fields_missing_fields_bad_types_and_enums)
{
	char why[2048];
	struct fc_api_req bad[] = {
		{ "PUT", "/machine-config", json_pack("{s:i, s:i, s:b}", "vcpu_count", 1, "mem_size_mib", 128, "turbo", 1) },
		{ "PUT", "/machine-config", json_pack("{s:i}", "vcpu_count", 1) },
		{ "PUT", "/machine-config", json_pack("{s:i, s:i}", "vcpu_count", 64, "mem_size_mib", 128) },
		{ "PUT", "/vsock", json_pack("{s:s, s:s}", "guest_cid", "3", "uds_path", "/v.sock") },
		{ "PUT", "/vsock", json_pack("{s:i, s:s}", "guest_cid", 2, "uds_path", "/v.sock") },
		{ "PATCH", "/vm", json_pack("{s:s}", "state", "Stopped") },
		{ "PUT", "/snapshot/load", json_pack("{s:s, s:{s:s, s:s}}", "snapshot_path", "/s", "mem_backend", "backend_type", "Disk", "backend_path", "/m") },
		{ "PUT", "/snapshot/create", json_pack("{s:s}", "snapshot_path", "/s") },
		{ "POST", "/actions", json_pack("{s:s}", "action_type", "InstanceStart") },
		{ "PUT", "/no-such-endpoint", json_object() },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		cr_expect_not(spec_accepts(&bad[i], why, sizeof(why)), "case %zu (%s %s) was accepted", i,
			      bad[i].method, bad[i].path);
		json_decref(bad[i].body);
	}
}
