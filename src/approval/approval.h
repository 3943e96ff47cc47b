/* The approval cliff: which actions need a human, what the human sees, and
 * how the answer comes back.
 *
 * Three parts, one header:
 *   - the policy and the ONE classifier (classify.c): every tool call and every
 *     apply of workspace changes is green (runs at once) or red (needs an
 *     approval), with a one-line reason. Red first: anything the classifier
 *     cannot prove harmless is red.
 *   - the approval card (card.c): what a decider is shown, and the SHA-256 of
 *     the exact effect (canonical JSON of tool name + arguments, or the diff)
 *     that a decision is tied to.
 *   - the deciders (approval.c, tty.c, external.c): `ask` prompts on
 *     /dev/tty (never stdout), `deny`, `yes` (loudly), and an external approver
 *     command that reads the card as JSON on its stdin.
 *
 * Everything runs on the CALLER's libuv loop: approval_decide() returns at
 * once and the callback fires later, never inside the call. No wait is open
 * ended: no answer within the timeout means deny. A decider that fails in any
 * way (no terminal, a crashed or babbling approver) denies, with a reason. */
#ifndef IRONCLAW_APPROVAL_APPROVAL_H
#define IRONCLAW_APPROVAL_APPROVAL_H

#include <jansson.h>
#include <stddef.h>
#include <uv.h>

#include "core/err.h"

#define APPROVAL_TIMEOUT_MS_DEFAULT 300000u  /* five minutes to answer */
#define APPROVAL_REASON_MAX 256
#define APPROVAL_RULES_MAX 256               /* globs in a config's "approval" */
#define APPROVAL_WORDS_MAX 64
#define APPROVAL_FILES_MAX 4096              /* files on one changes card */
#define APPROVAL_APPROVER_OUT_MAX (64u << 10) /* an approver's stdout */
#define APPROVAL_QUEUE_MAX 64                /* decisions waiting their turn */

/* The in-VM tools, by the names the model is given (the VM is disposable). */
#define APPROVAL_VM_TOOLS "run_command", "read_file", "write_file", "edit_file", "list_dir"

/* ---- policy and classifier (policy.c, classify.c) ---- */

enum approval_class { APPROVAL_GREEN, APPROVAL_RED };

struct approval_policy {
	/* Name globs (fnmatch, on the full "<server>__<tool>" or in-VM name).
	 * Red globs are checked first; both beat the server's annotations and the
	 * name heuristics, and red beats green. Owned, NULL-terminated, may be NULL. */
	char **red;
	char **green;
	/* Leading words of a read-only MCP tool name ("read", "list", ...), and
	 * words that make a name mutating wherever they appear ("delete").
	 * Owned, NULL-terminated. */
	char **readonly_words;
	char **mutating_words;
	unsigned timeout_ms; /* prompt and approver deadline */
};

/* Fills p with the defaults (no globs, the built-in word lists, the default
 * timeout). Returns 0 or -ENOMEM. Release with approval_policy_free(). */
int approval_policy_init(struct approval_policy *p);
void approval_policy_free(struct approval_policy *p);
/* Applies a config's "approval" object (borrowed) on top of p:
 *   {"red": [GLOB...], "green": [GLOB...], "readOnlyWords": [WORD...],
 *    "mutatingWords": [WORD...], "promptTimeoutS": N}
 * Unknown keys and wrong types are errors naming the key, never ignored. */
int approval_policy_from_json(struct approval_policy *p, const json_t *section, struct err *e);
/* Loads the "approval" section of a config file (the mcpServers file; see
 * mcp_config_default_path()). A missing file or section leaves the defaults. */
int approval_policy_load(struct approval_policy *p, const char *path, struct err *e);

struct approval_class_result {
	enum approval_class cls;
	char reason[APPROVAL_REASON_MAX]; /* one line, for the card and the log */
};

/* Classifies a tool call by name. `mcp_tool` is the tool's entry from its
 * server's tools/list (borrowed; its "annotations" are read as untrusted
 * hints), or NULL when no server offered a tool of that name. Never fails:
 * a NULL or empty name is red. */
void approval_classify_tool(const struct approval_policy *p, const char *name,
			    const json_t *mcp_tool, struct approval_class_result *out);
/* Applying workspace changes to the host: always red, whatever the policy. */
void approval_classify_changes(struct approval_class_result *out);

/* ---- the card (card.c) ---- */

enum approval_kind { APPROVAL_KIND_TOOL, APPROVAL_KIND_CHANGES };

/* What an approval covers. A changes card offers only THIS_CALL. */
enum approval_scope { APPROVAL_SCOPE_CALL, APPROVAL_SCOPE_TOOL };

struct approval_file {
	const char *path;    /* borrowed, workspace-relative */
	const char *summary; /* borrowed, e.g. "modified +3 -1", may be NULL */
	int conflict;        /* changed on the host since copy-in: never selectable */
};

/* Every pointer is borrowed and must stay valid until the decision's callback
 * has fired. Seal it (approval_card_seal) before deciding. */
struct approval_card {
	enum approval_kind kind;
	const char *title;          /* one line: "memory__create_entities", "apply 3 files" */
	const char *reason;         /* the classification's reason, may be NULL */
	/* APPROVAL_KIND_TOOL */
	const char *tool;
	const json_t *arguments;    /* the call's arguments (an object), may be NULL */
	int offer_tool_scope;       /* offer "this tool for the rest of the run" */
	/* APPROVAL_KIND_CHANGES */
	const char *diff;           /* the diff card's text (from the workspace code) */
	size_t diff_len;
	const struct approval_file *files;
	size_t n_files;
	/* Set by approval_card_seal(): the effect's SHA-256, lowercase hex. */
	char effect_sha256[65];
};

/* Computes card->effect_sha256: SHA-256 of the canonical JSON
 * {"arguments":ARGS,"name":TOOL} (sorted keys, compact, UTF-8) for a tool
 * card, of the diff bytes for a changes card. Returns 0, -EINVAL (missing
 * tool name or diff, too many files) or -ENOMEM. */
int approval_card_seal(struct approval_card *card);
/* The SHA-256 of n bytes as lowercase hex (OpenSSL). */
void approval_sha256_hex(const void *p, size_t n, char hex[65]);
/* The card as one JSON object, for an external approver (returns owned). */
json_t *approval_card_to_json(const struct approval_card *card);
/* The card as text for a terminal: arguments pretty-printed or the diff, the
 * numbered file list, the scope and the hash. Control characters from the
 * model or the guest are escaped, so the card cannot drive the terminal.
 * Returns an owned NUL-terminated string (capped), or NULL on ENOMEM. */
char *approval_card_render(const struct approval_card *card);

/* ---- deciders (approval.c, tty.c, external.c) ---- */

enum approval_mode {
	APPROVAL_MODE_DEFAULT,  /* ask when /dev/tty opens, deny otherwise */
	APPROVAL_MODE_ASK,
	APPROVAL_MODE_DENY,
	APPROVAL_MODE_YES,
	APPROVAL_MODE_APPROVER, /* --approver CMD */
};

struct approval_decision {
	int approved;              /* 1: approved (for a changes card: the selected files) */
	enum approval_scope scope; /* what was granted */
	const char *decider;       /* "ask", "deny", "yes", "approver", "remembered" */
	char reason[APPROVAL_REASON_MAX];
	char effect_sha256[65];    /* the card's: the decision holds for this effect only */
	/* Changes card: selected[i] says whether files[i] is to be applied
	 * (conflicts are never selected). NULL for a tool card. Valid during the
	 * callback only. */
	const unsigned char *selected;
	size_t n_files;
};

typedef void (*approval_cb)(const struct approval_decision *d, void *ctx);

struct approval_options {
	enum approval_mode mode;
	const char *approver;   /* the command line for APPROVAL_MODE_APPROVER (split
				   into argv, quotes honoured, no shell) */
	unsigned timeout_ms;    /* 0: APPROVAL_TIMEOUT_MS_DEFAULT */
	const char *tty_path;   /* NULL: "/dev/tty" */
	int quiet;              /* 1: no notices on stderr (the "yes" warning stays) */
};

struct approval;

/* Creates a decider on loop. For APPROVAL_MODE_DEFAULT, resolves to ask or
 * deny now (approval_mode_resolved tells which). For APPROVAL_MODE_YES, says
 * loudly on stderr that every red action will be approved. The approver
 * command is split and checked here (an empty one is -EINVAL). Ignores
 * SIGPIPE if its disposition is the default: an approver that exits without
 * reading its card must not kill us. Returns 0 or a negative errno. */
int approval_new(uv_loop_t *loop, const struct approval_options *o, struct approval **out,
		 struct err *e);
enum approval_mode approval_mode_resolved(const struct approval *a);
/* Asks for a decision on a sealed card. Decisions are taken one at a time in
 * order (at most APPROVAL_QUEUE_MAX waiting). A tool approved earlier with
 * APPROVAL_SCOPE_TOOL is approved again at once ("remembered"). cb fires
 * exactly once, never inside this call, unless this returns < 0 (-EINVAL for
 * an unsealed card, -EBUSY for a full queue, -ESHUTDOWN after close). */
int approval_decide(struct approval *a, const struct approval_card *card, approval_cb cb,
		    void *ctx);
/* Denies whatever is pending ("the run is ending"), kills an approver that is
 * still running, and frees a once its handles are closed (the loop must run
 * for that). Callbacks of pending decisions fire from within this call. */
void approval_close(struct approval *a);

/* Splits a command line into argv: blanks separate words, '...' and "..."
 * quote, backslash escapes the next character. No expansion of any kind.
 * Returns an owned NULL-terminated array (free with approval_argv_free), or
 * NULL on an empty line, unbalanced quotes, or over 64 words. */
char **approval_argv_split(const char *line);
void approval_argv_free(char **argv);

#endif
