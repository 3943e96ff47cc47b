/* The system prompt: see prompt.h. */
#include "agent/prompt.h"

#include <stdio.h>
#include <stdlib.h>

char *agent_system_prompt(int with_workspace, int net, int n_mcp_tools)
{
	char *s = NULL;
	if (asprintf(&s,
		     "You are an agent working inside a disposable Linux sandbox (a micro-VM with a busybox userland).\n"
		     "%s"
		     "Use the tools to inspect, change and test; paths for the file tools are relative to /workspace.\n"
		     "%s"
		     "%s"
		     "When you change files, only /workspace counts: at the end the user reviews a diff of it and "
		     "decides whether it is applied to their machine.\n"
		     "Work step by step, check your work by running it, and when the task is done answer with a short "
		     "summary of what you did, without calling a tool.\n",
		     with_workspace ? "/workspace holds a copy of the user's project.\n" : "/workspace starts empty.\n",
		     net ? "The network reaches only the destinations the user allowed.\n" : "There is no network.\n",
		     n_mcp_tools ? "Tools named <server>__<tool> come from the user's MCP servers; some need the user's "
				   "approval, and a denied call comes back as an error: do not retry it unchanged.\n" : "") < 0)
		return NULL;
	return s;
}
