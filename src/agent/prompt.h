/* IronClaw's own instructions to the model (the system prompt). The user's task
 * goes verbatim as the first user message, never mixed into this. */
#ifndef IRONCLAW_AGENT_PROMPT_H
#define IRONCLAW_AGENT_PROMPT_H

/* Returns an owned system prompt for a run (with_workspace: a copy of the
 * user's directory is in /workspace; net: the VM has an allowlisted network). */
char *agent_system_prompt(int with_workspace, int net, int n_mcp_tools);

#endif
