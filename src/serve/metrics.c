/* The daemon's counters and latency histograms, and GET /metrics in the
 * Prometheus text format (0.0.4). Histograms use fixed millisecond buckets
 * that span a pool hand-over (under 1 ms) to a slow cold boot under TCG. */
#include <errno.h>
#include <stdio.h>

#include "serve/internal.h"

static const double hist_le[SERVE_HIST_BUCKETS] = { 1, 5, 10, 25, 50, 100, 250, 500,
						    1000, 2500, 5000, 10000 };

void serve_hist_add(struct serve_hist *h, double ms)
{
	size_t i = 0;
	while (i < SERVE_HIST_BUCKETS && ms > hist_le[i])
		i++;
	h->bucket[i]++;
	h->count++;
	h->sum += ms;
}

static int metrics_hist(struct buf *b, const char *name, const char *help,
			const struct serve_hist *h)
{
	uint64_t cum = 0;
	int rc = buf_printf(b, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
	for (size_t i = 0; rc == 0 && i < SERVE_HIST_BUCKETS; i++) {
		cum += h->bucket[i];
		rc = buf_printf(b, "%s_bucket{le=\"%g\"} %llu\n", name, hist_le[i],
				(unsigned long long)cum);
	}
	cum += h->bucket[SERVE_HIST_BUCKETS];
	if (rc == 0)
		rc = buf_printf(b, "%s_bucket{le=\"+Inf\"} %llu\n%s_sum %.3f\n%s_count %llu\n", name,
				(unsigned long long)cum, name, h->sum, name,
				(unsigned long long)h->count);
	return rc;
}

static int metrics_counter(struct buf *b, const char *name, const char *help, uint64_t v)
{
	return buf_printf(b, "# HELP %s %s\n# TYPE %s counter\n%s %llu\n", name, help, name, name,
			  (unsigned long long)v);
}

static int metrics_gauge(struct buf *b, const char *name, const char *help, uint64_t v)
{
	return buf_printf(b, "# HELP %s %s\n# TYPE %s gauge\n%s %llu\n", name, help, name, name,
			  (unsigned long long)v);
}

int serve_metrics_text(struct serve *s, struct buf *b)
{
	const struct serve_metrics *m = &s->m;
	int rc = 0;
	rc |= metrics_gauge(b, "ironclaw_sandboxes", "Sandboxes held (deleting ones included).",
			    serve_sandbox_count(s));
	rc |= metrics_gauge(b, "ironclaw_sandboxes_deleting",
			    "Deleted sandboxes (answered 204) whose VM teardown is not finished.",
			    serve_sandbox_deleting(s));
	rc |= metrics_gauge(b, "ironclaw_pool_ready", "Warm pool VMs ready.", serve_pool_ready(s->pool));
	rc |= metrics_gauge(b, "ironclaw_pool_booting", "Warm pool VMs booting.",
			    serve_pool_booting(s->pool));
	rc |= metrics_gauge(b, "ironclaw_memory_mib", "Guest memory held by sandboxes and pool.",
			    serve_sandbox_memory_mib(s) + serve_pool_memory_mib(s->pool));
	rc |= buf_printf(b, "# HELP ironclaw_sandboxes_created_total Sandboxes made ready, by how.\n"
			    "# TYPE ironclaw_sandboxes_created_total counter\n"
			    "ironclaw_sandboxes_created_total{made=\"pool\"} %llu\n"
			    "ironclaw_sandboxes_created_total{made=\"snapshot\"} %llu\n"
			    "ironclaw_sandboxes_created_total{made=\"cold\"} %llu\n",
			 (unsigned long long)m->created[0], (unsigned long long)m->created[1],
			 (unsigned long long)m->created[2]);
	rc |= metrics_counter(b, "ironclaw_sandbox_failures_total", "Sandboxes whose VM did not start.",
			      m->create_failures);
	rc |= metrics_counter(b, "ironclaw_sandboxes_deleted_total", "Sandboxes deleted.", m->deleted);
	rc |= metrics_counter(b, "ironclaw_sandboxes_expired_total", "Sandboxes destroyed at their TTL.",
			      m->expired);
	rc |= metrics_counter(b, "ironclaw_execs_total", "Execs started.", m->execs);
	rc |= metrics_counter(b, "ironclaw_exec_failures_total", "Execs that failed on the host side.",
			      m->exec_failures);
	rc |= metrics_counter(b, "ironclaw_exec_disconnects_total",
			      "Execs killed because their client went away.", m->exec_disconnects);
	rc |= metrics_counter(b, "ironclaw_pool_vms_made_total", "Pool VMs that became ready.",
			      m->pool_made);
	rc |= metrics_counter(b, "ironclaw_pool_failures_total", "Pool VMs that failed.",
			      m->pool_failures);
	rc |= buf_printf(b, "# HELP ironclaw_requests_rejected_total Requests refused, by status.\n"
			    "# TYPE ironclaw_requests_rejected_total counter\n"
			    "ironclaw_requests_rejected_total{code=\"400\"} %llu\n"
			    "ironclaw_requests_rejected_total{code=\"413\"} %llu\n"
			    "ironclaw_requests_rejected_total{code=\"429\"} %llu\n",
			 (unsigned long long)m->rejected_400, (unsigned long long)m->rejected_413,
			 (unsigned long long)m->rejected_429);
	rc |= buf_printf(b, "# HELP ironclaw_vms_made_total VMs made ready (pool and sandboxes), by how.\n"
			    "# TYPE ironclaw_vms_made_total counter\n"
			    "ironclaw_vms_made_total{how=\"snapshot\"} %llu\n"
			    "ironclaw_vms_made_total{how=\"cold\"} %llu\n",
			 (unsigned long long)m->vms_made[0], (unsigned long long)m->vms_made[1]);
	rc |= metrics_counter(b, "ironclaw_restore_fallbacks_total",
			      "Template restores that failed and booted cold instead.",
			      m->restore_fallbacks);
	rc |= metrics_counter(b, "ironclaw_templates_built_total", "Templates built by the daemon.",
			      m->tpl_built);
	rc |= metrics_counter(b, "ironclaw_template_build_failures_total",
			      "Template builds that failed.", m->tpl_build_failures);
	rc |= metrics_counter(b, "ironclaw_templates_unusable_total",
			      "Templates found corrupt or truncated (rebuilt).", m->tpl_unusable);
	rc |= metrics_hist(b, "ironclaw_boot_ms", "Cold boot to ready, ms.", &m->boot_ms);
	rc |= metrics_hist(b, "ironclaw_restore_ms", "Snapshot restore to ready, ms.", &m->restore_ms);
	rc |= metrics_hist(b, "ironclaw_pool_acquire_ms", "Pool hand-over, ms.", &m->acquire_ms);
	return rc ? -EMSGSIZE : 0;
}
