/* Tool definitions (tooldefs.c): which a client keeps, and the Mcp-Param-*
 * headers a kept one asks for. Internal to src/mcp. */
#ifndef IRONCLAW_MCP_TOOLDEFS_H
#define IRONCLAW_MCP_TOOLDEFS_H

#include <jansson.h>
#include <stddef.h>

/* 0 when tool (borrowed) is usable; -EINVAL with the reason in why otherwise. */
int mcp_tooldef_check(json_t *tool, char *why, size_t whylen);
/* The usable definitions of tools (borrowed array), as a new array; each
 * skipped one is logged as a warning naming server. NULL only without memory. */
json_t *mcp_tooldefs_filter(const char *server, json_t *tools);
/* The spec's header value encoding of n bytes of v into out (NUL-terminated).
 * Returns 0 or -E2BIG when cap is too small. */
int mcp_header_encode(const char *v, size_t n, char *out, size_t cap);
/* [["Mcp-Param-NAME", "value"], ...] for args (borrowed) of the checked
 * definition tool (borrowed), values as text and not yet encoded (the
 * transport does that); NULL when there are none. */
json_t *mcp_tooldef_param_headers(json_t *tool, json_t *args);

#endif
