/* The tools the model gets inside the run's VM, under /workspace, with exactly
 * these names and arguments (policies and fixtures rely on them):
 *
 *   run_command {command, timeout_s?}   sh -c in /workspace; stdout, stderr, exit code
 *   read_file   {path, offset?, limit?} text with line numbers; binary is reported as such
 *   write_file  {path, content}         creates parents
 *   edit_file   {path, old_string, new_string, replace_all?}   exact replacement
 *   list_dir    {path}
 *
 * Paths are relative to /workspace. An absolute path or a `..` component is
 * refused on the host before anything runs; a path that resolves outside
 * /workspace inside the VM (through a symlink) is refused by the command that
 * runs there. Both are tool errors the model can correct. Every argument is
 * checked against the tool's schema first. The VM is disposable, so this
 * confinement is about honest tool semantics; the host's protection is the copy
 * out (workspace/), which trusts nothing the VM wrote. */
#ifndef IRONCLAW_AGENT_TOOLS_H
#define IRONCLAW_AGENT_TOOLS_H

#include <jansson.h>
#include <stddef.h>

#include "core/err.h"

struct vm;

#define AGENT_TOOL_TIMEOUT_S_DEFAULT 120
#define AGENT_TOOL_TIMEOUT_S_MAX 600
#define AGENT_OUTPUT_CAP (64u * 1024)       /* per stream of run_command, head + tail */
#define AGENT_FILE_CAP (4u << 20)           /* read_file / edit_file content */
#define AGENT_READ_LINES_DEFAULT 2000

struct agent_tool_result {
	int is_error;         /* a tool error: goes back to the model as such */
	char *text;           /* owned: what the model reads */
	int fatal;            /* the VM itself failed: the run cannot go on */
	int exit_code;        /* run_command's exit code, else 0 */
};

typedef void (*agent_tool_cb)(void *ctx, struct agent_tool_result *r);

/* The tool definitions for the model: an owned array of {name, description,
 * input_schema}. */
json_t *agent_vm_tools(void);
/* 1 when name is one of the in-VM tools. */
int agent_is_vm_tool(const char *name);
/* Runs one tool call; args borrowed. cb runs exactly once, maybe before this
 * returns; the result is freed after cb. timeout_s_max caps run_command's
 * timeout (0: AGENT_TOOL_TIMEOUT_S_MAX). */
struct agent_sandbox;
void agent_vm_tool_call(struct agent_sandbox *sb, const char *name, json_t *args, unsigned timeout_s_default,
			agent_tool_cb cb, void *ctx);

/* Lexical check of a model-given path: relative, no `..`, no NUL, not empty
 * (\".\" means the workspace itself). Returns 0 or -EINVAL with a message. */
int agent_path_check(const char *path, struct err *e);

#endif
