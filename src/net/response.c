/* What kind of response a transfer is getting, read from curl once its first
 * body bytes arrive: both HTTP clients (the MCP transport and the model
 * client) take the same turn there, an event stream to the SSE parser and
 * anything else to a capped body buffer. */
#include "net/net.h"

#include <strings.h>

int net_curl_is_event_stream(CURL *easy, long *status)
{
	char *ct = NULL;
	curl_easy_getinfo(easy, CURLINFO_CONTENT_TYPE, &ct);
	curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, status);
	return ct && !strncasecmp(ct, "text/event-stream", 17) && *status < 300;
}
