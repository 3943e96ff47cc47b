/* The opening handshake of each protocol era, and re-initialization after a
 * server ended the session.
 *
 * Eras: we first try the stateless 2026-07-28 era (server/discover with the
 * per-request _meta envelope and, over HTTP, MCP-Protocol-Version). A server
 * that refuses the version it was offered (-32022 "Unsupported protocol
 * version", with the versions it does support in error.data.supported) gets
 * discovery again when it lists 2026-07-28, or the initialize handshake with
 * the newest legacy revision it lists. Any other error that is not a modern
 * answer, or a timeout, falls back to initialize + notifications/initialized,
 * offering 2025-11-25 and accepting any revision back to 2024-11-05.
 *
 * A session that the server ended (HTTP 404) is re-initialized once; the
 * requests waiting for it are then re-sent, except tools/call, which is never
 * retried because it may not be idempotent. */
#include "mcp/client_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"

static const char *const legacy_versions[] = {
	"2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25", NULL,
};

/* ---- handshake ---- */

static int version_is_legacy(const char *v)
{
	for (int i = 0; legacy_versions[i]; i++)
		if (!strcmp(v, legacy_versions[i]))
			return 1;
	return 0;
}

static void client_set_server(struct mcp_client *c, json_t *info, json_t *caps)
{
	json_decref(c->server_info);
	json_decref(c->server_caps);
	c->server_info = json_is_object(info) ? json_incref(info) : NULL;
	c->server_caps = json_is_object(caps) ? json_incref(caps) : NULL;
}

static void hs_finish(struct mcp_client *c, int rc, const struct err *e)
{
	c->hs_active = 0;
	if (c->hs_next)
		c->hs_next(c, rc, e);
}

static void hs_on_initialize(void *opaque, int rc, json_t *res, const struct err *e)
{
	struct mcp_client *c = opaque;
	struct err he = { 0 };
	if (rc < 0) {
		he = *e;
		err_wrap(&he, "initializing server '%s'", c->cfg->name);
		hs_finish(c, rc, &he);
		return;
	}
	json_t *pv = json_object_get(res, "protocolVersion");
	if (!json_is_string(pv) || !version_is_legacy(json_string_value(pv))) {
		rc = err_set(&he, -EPROTO, "server '%s' answered initialize with protocol version "
			     "'%s', which this client does not speak (it speaks 2024-11-05 to %s "
			     "and %s)", c->cfg->name, json_is_string(pv) ? json_string_value(pv) :
			     "(none)", MCP_VERSION_LATEST_LEGACY, MCP_VERSION_MODERN);
		hs_finish(c, rc, &he);
		return;
	}
	snprintf(c->version, sizeof(c->version), "%s", json_string_value(pv));
	client_set_server(c, json_object_get(res, "serverInfo"), json_object_get(res, "capabilities"));
	c->tp->ops->set_version(c->tp, c->version);
	rc = mcp_client_notify(c, "notifications/initialized", NULL, &he);
	if (rc == 0 && c->tp->ops->listen)
		c->tp->ops->listen(c->tp);
	hs_finish(c, rc, &he);
}

static int hs_call(struct mcp_client *c, const char *method, json_t *params, long timeout,
		   int no_cancel, mcp_result_cb cb, struct err *e)
{
	struct mcp_call *k;
	int rc = mcp_call_start(c, method, params, NULL, timeout, 0, cb, c, &k, e);
	if (rc == 0) {
		k->no_reinit = 1;
		k->no_cancel = no_cancel;
	}
	return rc;
}

static int hs_initialize(struct mcp_client *c, const char *offer, struct err *e)
{
	json_t *params = json_pack("{s:s,s:o,s:o}", "protocolVersion", offer, "capabilities",
				   mcp_client_caps_json(c), "clientInfo", mcp_client_info_json());
	int rc = hs_call(c, "initialize", params, 0, 0, hs_on_initialize, e);
	if (rc < 0)
		err_wrap(e, "initializing server '%s'", c->cfg->name);
	return rc;
}

static int hs_discover(struct mcp_client *c, struct err *e);

/* After a failed server/discover: whether the server said -32022 and listed a
 * version we speak; *offer is then MCP_VERSION_MODERN (discover again, once)
 * or the newest legacy revision it listed (borrowed from legacy_versions). */
static int hs_version_refused(struct mcp_client *c, const char **offer)
{
	json_t *err = c->rpc_error;
	if (!err || json_integer_value(json_object_get(err, "code")) != -32022)
		return 0;
	json_t *sup = json_object_get(json_object_get(err, "data"), "supported");
	*offer = NULL;
	size_t i;
	json_t *v;
	json_array_foreach(sup, i, v) {
		const char *s = json_string_value(v);
		if (!s)
			continue;
		if (!strcmp(s, MCP_VERSION_MODERN) &&
		    c->discover_retries < MCP_DISCOVER_RETRIES_MAX) {
			*offer = MCP_VERSION_MODERN;
			return 1;
		}
		for (int j = 0; legacy_versions[j]; j++)
			if (!strcmp(s, legacy_versions[j]) &&
			    (!*offer || strcmp(legacy_versions[j], *offer) > 0))
				*offer = legacy_versions[j];
	}
	return *offer != NULL && !c->cfg->protocol_version;
}

static void hs_on_discover(void *opaque, int rc, json_t *res, const struct err *e)
{
	struct mcp_client *c = opaque;
	struct err he = { 0 };
	const char *offer = NULL;
	int ok = 0;
	if (rc == -EACCES) {
		/* Authorization is missing or refused: initialize would be refused too. */
		he = *e;
		err_wrap(&he, "connecting to server '%s'", c->cfg->name);
		hs_finish(c, rc, &he);
		return;
	}
	if (rc < 0) {
		log_debug("mcp: server/discover: %s; falling back to initialize", e->msg);
		if (c->dead) {
			err_set(&he, -EPIPE, "connecting to server '%s': %s", c->cfg->name,
				c->dead_err.msg);
			hs_finish(c, -EPIPE, &he);
			return;
		}
	} else {
		json_t *vers = json_object_get(res, "supportedVersions");
		size_t i;
		json_t *v;
		json_array_foreach(vers, i, v)
			if (json_is_string(v) && !strcmp(json_string_value(v), MCP_VERSION_MODERN))
				ok = 1;
	}
	if (!ok && rc < 0 && hs_version_refused(c, &offer)) {
		if (!strcmp(offer, MCP_VERSION_MODERN)) {
			log_debug("mcp: server '%s' refused the version; discovering again",
				  c->cfg->name);
			c->discover_retries++;
			if ((rc = hs_discover(c, &he)) < 0)
				hs_finish(c, rc, &he);
			return;
		}
		c->tp->ops->set_version(c->tp, NULL);
		if ((rc = hs_initialize(c, offer, &he)) < 0)
			hs_finish(c, rc, &he);
		return;
	}
	if (ok) {
		json_t *meta = json_object_get(res, "_meta");
		client_set_server(c, json_object_get(meta, "io.modelcontextprotocol/serverInfo"),
				  json_object_get(res, "capabilities"));
		c->modern = 1;
		snprintf(c->version, sizeof(c->version), "%s", MCP_VERSION_MODERN);
		hs_finish(c, 0, NULL);
		return;
	}
	if (c->cfg->protocol_version) {
		err_set(&he, -EPROTO, "server '%s' does not speak %s (server/discover failed)",
			c->cfg->name, MCP_VERSION_MODERN);
		hs_finish(c, -EPROTO, &he);
		return;
	}
	c->tp->ops->set_version(c->tp, NULL);
	if ((rc = hs_initialize(c, MCP_VERSION_LATEST_LEGACY, &he)) < 0)
		hs_finish(c, rc, &he);
}

static int hs_discover(struct mcp_client *c, struct err *e)
{
	long t = c->cfg->timeout_ms > 0 && c->cfg->timeout_ms < CLIENT_DISCOVER_TIMEOUT_MS ?
		c->cfg->timeout_ms : CLIENT_DISCOVER_TIMEOUT_MS;
	c->tp->ops->set_version(c->tp, MCP_VERSION_MODERN);
	json_t *params = json_object();
	mcp_client_add_envelope(c, params);
	int rc = hs_call(c, "server/discover", params, t, 1, hs_on_discover, e);
	if (rc < 0)
		err_wrap(e, "connecting to server '%s'", c->cfg->name);
	return rc;
}

/* Starts the handshake; hs_next runs when it ends (never inside this call).
 * Returns <0 when it could not start. */
int mcp_hs_start(struct mcp_client *c, struct err *e)
{
	const char *forced = c->cfg->protocol_version;
	c->modern = 0;
	c->version[0] = '\0';
	if (forced && strcmp(forced, MCP_VERSION_MODERN) && !version_is_legacy(forced))
		return err_set(e, -EINVAL, "server '%s': unknown \"protocolVersion\" '%s'",
			       c->cfg->name, forced);
	int rc;
	c->discover_retries = 0;
	if (!forced || !strcmp(forced, MCP_VERSION_MODERN)) {
		rc = hs_discover(c, e);
	} else {
		rc = hs_initialize(c, forced, e);
	}
	if (rc == 0)
		c->hs_active = 1;
	return rc;
}

/* ---- re-initialization after the server ended the session ---- */

static void reinit_done(struct mcp_client *c, int rc, const struct err *he)
{
	for (;;) {
		struct mcp_call *k = c->calls;
		while (k && !k->waiting_reinit)
			k = k->next;
		if (!k)
			break;
		k->waiting_reinit = 0;
		k->no_reinit = 1;   /* once */
		struct err e = { 0 };
		if (rc < 0) {
			err_set(&e, rc, "the server ended the session and re-initializing failed: "
				"%.900s", he ? he->msg : "");
			mcp_call_finish(k, rc, NULL, &e);
		} else if (!strcmp(k->method, "tools/call")) {
			err_set(&e, -ESTALE, "the server ended the session; a new one is open, but "
				"tools/call is never retried automatically (it may not be "
				"idempotent): call the tool again");
			mcp_call_finish(k, -ESTALE, NULL, &e);
		} else if (mcp_call_send(c, k, &e) < 0) {
			mcp_call_finish(k, e.code, NULL, &e);
		}
	}
}

void mcp_hs_reinit(struct mcp_client *c, struct mcp_call *k)
{
	k->waiting_reinit = 1;
	if (c->hs_active)
		return;   /* the new session under way serves this call too */
	log_info("mcp: server '%s' ended the session; re-initializing", c->cfg->name);
	c->tp->ops->reset_session(c->tp);
	c->hs_next = reinit_done;
	struct err e = { 0 };
	int rc = mcp_hs_start(c, &e);
	if (rc < 0)
		reinit_done(c, rc, &e);
}
