/* The MCP client against the official filesystem and memory servers: an
 * access-denied tool error that goes back as isError (not a protocol error),
 * roots replacing the filesystem server's allowed directories at start and when
 * they change, and a knowledge-graph round trip with the memory server. */
#include "test_mcp_util.h"

static void write_file(const char *dir, const char *name, const char *text)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	FILE *f = fopen(path, "w");
	cr_assert(f);
	fputs(text, f);
	fclose(f);
}

static int read_text(struct mcp_client *c, const char *dir, const char *name, json_t **res)
{
	char path[512];
	struct err e = { 0 };
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	cr_assert_eq(mcp_sync_call_tool(c, "read_text_file", json_pack("{s:s}", "path", path), res, &e),
		     0, "a denied read is a tool error, not a failure: %s", e.msg);
	return mcp_result_is_error(*res);
}

Test(mcp_servers, filesystem_denied_is_tool_error, .timeout = 60)
{
	char a[] = "/tmp/ironclaw-fs-aXXXXXX", b[] = "/tmp/ironclaw-fs-bXXXXXX";
	cr_assert(mkdtemp(a) && mkdtemp(b));
	write_file(a, "in.txt", "inside A");
	write_file(b, "out.txt", "outside");
	struct mcp_server_config cfg;
	char *script = mt_peer("node_modules/@modelcontextprotocol/server-filesystem/dist/index.js");
	mt_cfg_node(&cfg, "fs", script, a, NULL);
	struct mcp_client *c = mt_connect(&cfg, NULL);
	json_t *res;
	cr_assert_not(read_text(c, a, "in.txt", &res));
	cr_assert_str_eq(mt_text(res), "inside A");
	json_decref(res);
	cr_assert(read_text(c, b, "out.txt", &res), "reading outside the allowed dir must fail");
	cr_assert(strstr(mt_text(res), "denied") || strstr(mt_text(res), "outside"),
		  "%s", mt_text(res));
	json_decref(res);
	mcp_sync_close(c);
	mcp_server_config_free(&cfg);
	free(script);
}

Test(mcp_servers, filesystem_roots_replace_allowed_dirs, .timeout = 60)
{
	char a[] = "/tmp/ironclaw-fs-aXXXXXX", b[] = "/tmp/ironclaw-fs-bXXXXXX";
	cr_assert(mkdtemp(a) && mkdtemp(b));
	write_file(a, "f.txt", "in A");
	write_file(b, "f.txt", "in B");
	struct mcp_server_config cfg;
	char *script = mt_peer("node_modules/@modelcontextprotocol/server-filesystem/dist/index.js");
	mt_cfg_node(&cfg, "fs", script, a, NULL);
	cr_assert_eq(mcp_config_add_root(&cfg, b), 0);
	struct mcp_client *c = mt_connect(&cfg, NULL);
	json_t *res;
	/* The server asks for roots right after initialization; answer it. */
	int ok = 0;
	for (int i = 0; i < 50 && !ok; i++) {
		mcp_sync_pump(c, 100);
		ok = !read_text(c, b, "f.txt", &res);
		json_decref(res);
	}
	cr_assert(ok, "the root we offered never became an allowed directory");
	cr_assert(read_text(c, a, "f.txt", &res), "roots replace the command-line directories");
	json_decref(res);

	struct err e = { 0 };
	const char *next[] = { a, NULL };
	cr_assert_eq(mcp_client_set_roots(c, next, &e), 0, "%s", e.msg);
	ok = 0;
	for (int i = 0; i < 50 && !ok; i++) {
		mcp_sync_pump(c, 100);
		ok = !read_text(c, a, "f.txt", &res);
		json_decref(res);
	}
	cr_assert(ok, "the changed roots never reached the server");
	cr_assert(read_text(c, b, "f.txt", &res), "the old root is no longer allowed");
	json_decref(res);
	mcp_sync_close(c);
	mcp_server_config_free(&cfg);
	free(script);
}

Test(mcp_servers, memory_graph_round_trip, .timeout = 60)
{
	char dir[] = "/tmp/ironclaw-mem-XXXXXX";
	cr_assert(mkdtemp(dir));
	char store[600];
	snprintf(store, sizeof(store), "%s/memory.jsonl", dir);
	char *script = mt_peer("node_modules/@modelcontextprotocol/server-memory/dist/index.js");
	char *node = mt_node();
	json_t *srv = json_pack("{s:s,s:[s],s:{s:s}}", "command", node, "args", script, "env",
				"MEMORY_FILE_PATH", store);
	free(node);
	struct mcp_server_config cfg;
	struct err e = { 0 };
	cr_assert_eq(mcp_config_from_json("memory", srv, &cfg, &e), 0, "%s", e.msg);
	json_decref(srv);
	struct mcp_client *c = mt_connect(&cfg, NULL);
	json_t *res = NULL;
	cr_assert_eq(mcp_sync_call_tool(c, "create_entities",
				   json_pack("{s:[{s:s,s:s,s:[s]}]}", "entities", "name", "ironclaw",
					     "entityType", "project", "observations",
					     "runs agents in micro-VMs"), &res, &e), 0, "%s", e.msg);
	cr_assert_not(mcp_result_is_error(res));
	json_decref(res);
	cr_assert_eq(mcp_sync_call_tool(c, "search_nodes", json_pack("{s:s}", "query", "micro-VMs"),
				   &res, &e), 0, "%s", e.msg);
	char *dump = json_dumps(res, 0);
	cr_assert(strstr(dump, "ironclaw"), "%s", dump);
	free(dump);
	json_decref(res);
	mcp_sync_close(c);
	/* The server really stored it, in the file we gave through "env". */
	FILE *f = fopen(store, "r");
	cr_assert(f, "memory server did not write %s", store);
	fclose(f);
	mcp_server_config_free(&cfg);
	free(script);
}
