/* The run's MCP servers: connected on the run's loop at start, their tools
 * offered to the model as "<server>__<tool>" with their input schemas unchanged,
 * and calls routed back to the right server. A server that cannot be reached is
 * a clear failure of the run (the user asked for it), not a silent omission. */
#ifndef IRONCLAW_AGENT_MCP_TOOLS_H
#define IRONCLAW_AGENT_MCP_TOOLS_H

#include <jansson.h>
#include <uv.h>

#include "core/err.h"

#define AGENT_MCP_RESULT_MAX (256u * 1024)

struct agent_mcp;

/* e NULL when every server is connected and listed. */
typedef void (*agent_mcp_ready_cb)(void *ctx, const struct err *e);
/* text owned by the callee (freed after the call); is_error: a tool error. */
typedef void (*agent_mcp_result_cb)(void *ctx, int is_error, const char *text);

/* Connects the named servers of config_path (names NULL: all of them). */
int agent_mcp_start(uv_loop_t *loop, const char *config_path, const char *const *names, size_t n,
		    int all, agent_mcp_ready_cb cb, void *ctx, struct agent_mcp **out, struct err *e);
/* The tools for the model: an array of {name, description, input_schema}
 * (borrowed, valid until close). */
json_t *agent_mcp_tools(struct agent_mcp *m);
/* The server's own tools/list entry of a "<server>__<tool>" name (borrowed),
 * for the classifier; NULL when no server offers it. */
const json_t *agent_mcp_tool_entry(struct agent_mcp *m, const char *name);
/* Calls it; args borrowed. cb runs exactly once, never inside this call. */
void agent_mcp_call(struct agent_mcp *m, const char *name, json_t *args, agent_mcp_result_cb cb,
		    void *ctx);
/* Closes every server (asynchronously); done runs once all are released. */
void agent_mcp_close(struct agent_mcp *m, void (*done)(void *ctx), void *ctx);

#endif
