/*
 * tandemctl.c: the admin CLI.  It owns the command line (a table of
 * subcommands, one function each), the one round trip per command to the
 * local tandemd over the libqb IPC service of ctl-proto.h, and the
 * rendering of replies for people (text) and for scripts (--json, exactly
 * one JSON document on stdout in every case, errors included).
 *
 * Every failure is one line on stderr, "tandemctl: <reason>", and an exit
 * code from enum ctl_exit: 2 for a bad command line (nothing was sent),
 * 3 when tandemd is not running or not answering, and for a refusal the
 * code the daemon put in its reply (1 when it gave none).  Rule 5: bad
 * input gets a clear error and changes nothing.
 *
 * db exec, db query and db hash speak the db-* requests of ctl-proto.h
 * themselves rather than through libtandem, so that --json prints the
 * daemon's reply document as it came.
 *
 * The environment variable TANDEM_CTL_SERVICE overrides the IPC service
 * name, so that tests can run a server of their own next to a real tandemd.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <jansson.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

#include <qb/qbipcc.h>

#include "ctl-proto.h"

#ifndef TANDEM_VERSION
#define TANDEM_VERSION "unknown"
#endif

/* How long each command waits for its reply. */
#define STATUS_TIMEOUT_MS (10 * 1000)
#define FAILOVER_TIMEOUT_MS (120 * 1000)
#define LOG_LEVEL_TIMEOUT_MS (10 * 1000)
/* A commit in sync mode waits for the standby. */
#define DB_TIMEOUT_MS (120 * 1000)

struct ctl {
	bool json;
};

struct command {
	const char *name;
	int (*fn)(struct ctl *ctl, int argc, char **argv);
	const char *args;
	const char *help;
};

static int cmd_status(struct ctl *ctl, int argc, char **argv);
static int cmd_failover(struct ctl *ctl, int argc, char **argv);
static int cmd_log_level(struct ctl *ctl, int argc, char **argv);
static int cmd_db(struct ctl *ctl, int argc, char **argv);

static const struct command commands[] = {
    {"status", cmd_status, "", "show this node, its peer, quorum, VIP, replication and fencing"},
    {"failover", cmd_failover, "[--to NODE] [--force]",
        "make NODE (default: the standby) active and wait until it is"},
    {"log-level", cmd_log_level, "[LEVEL]",
        "show tandemd's log level, or set it (debug, info, notice, warning, err)"},
    {"db", cmd_db, "exec SQL [SQL...]",
        "run SQL on the replicated database as one transaction (on the active)"},
    {"db", cmd_db, "query SQL", "run one read-only statement on this node's copy"},
    {"db", cmd_db, "hash", "show the database's content hash and position"},
};

#define N_COMMANDS (sizeof(commands) / sizeof(commands[0]))

/* Output */

static void
print_json(json_t *obj)
{
	(void)json_dumpf(obj, stdout, JSON_INDENT(2));
	(void)fputc('\n', stdout);
}

/*
 * Reports a failure: one line on stderr and, with --json, the error
 * document on stdout.  Returns code, for "return fail(...)".
 */
static int fail(const struct ctl *ctl, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int
fail(const struct ctl *ctl, int code, const char *fmt, ...)
{
	char message[1024];
	va_list ap;

	va_start(ap, fmt);
	(void)vsnprintf(message, sizeof(message), fmt, ap);
	va_end(ap);
	(void)fprintf(stderr, "tandemctl: %s\n", message);
	if (ctl->json) {
		json_t *obj = json_pack("{s:b, s:s, s:i}", "ok", 0, "error", message, "exit", code);

		if (obj != NULL)
			print_json(obj);
		json_decref(obj);
	}
	return code;
}

static void
usage_text(FILE *f)
{
	size_t i;

	(void)fprintf(f, "Usage: tandemctl [--json] COMMAND [ARGS...]\n"
	                 "       tandemctl --help | --version\n\n"
	                 "Talks to tandemd on this node.\n\nCommands:\n");
	for (i = 0; i < N_COMMANDS; i++)
		(void)fprintf(
		    f, "  %-10s %-22s %s\n", commands[i].name, commands[i].args, commands[i].help);
	(void)fprintf(f, "\nOptions:\n"
	                 "  --json     print one JSON document on stdout, also on errors\n"
	                 "  -h, --help show this help (or a command's: COMMAND --help)\n"
	                 "  --version  show tandemctl's version\n\n"
	                 "Exit status: 0 ok, 1 refused or failed, 2 bad command line,\n"
	                 "3 tandemd not running, 4 not the active node.\n");
}

static void
command_usage_text(FILE *f, const struct command *cmd)
{
	bool first = true;
	size_t i;

	/* db has one line per subcommand. */
	if (strcmp(cmd->name, "db") == 0) {
		for (i = 0; i < N_COMMANDS; i++) {
			if (strcmp(commands[i].name, "db") != 0)
				continue;
			(void)fprintf(f, "%s tandemctl [--json] db %s\n",
			    first ? "Usage:" : "      ", commands[i].args);
			first = false;
		}
		(void)fprintf(f, "\n");
		for (i = 0; i < N_COMMANDS; i++) {
			if (strcmp(commands[i].name, "db") == 0)
				(void)fprintf(
				    f, "  %-18s %s\n", commands[i].args, commands[i].help);
		}
		(void)fprintf(
		    f, "\nValues print tab-separated, NULL as NULL and blobs as x'hex'.\n");
		return;
	}
	(void)fprintf(f, "Usage: tandemctl [--json] %s%s%s\n\n%s\n", cmd->name,
	    cmd->args[0] != '\0' ? " " : "", cmd->args, cmd->help);
}

/* Prints help text, or with --json a document holding it. */
static int
print_help(const struct ctl *ctl, const struct command *cmd)
{
	char *text = NULL;
	size_t len = 0;
	FILE *f;
	json_t *obj;

	if (!ctl->json) {
		if (cmd != NULL)
			command_usage_text(stdout, cmd);
		else
			usage_text(stdout);
		return CTL_EXIT_OK;
	}
	f = open_memstream(&text, &len);
	if (f == NULL)
		return fail(ctl, CTL_EXIT_FAILED, "out of memory");
	if (cmd != NULL)
		command_usage_text(f, cmd);
	else
		usage_text(f);
	(void)fclose(f);
	obj = json_pack("{s:b, s:s}", "ok", 1, "help", text);
	free(text);
	if (obj == NULL)
		return fail(ctl, CTL_EXIT_FAILED, "out of memory");
	print_json(obj);
	json_decref(obj);
	return CTL_EXIT_OK;
}

static int usage_error(const struct ctl *ctl, const struct command *cmd, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int
usage_error(const struct ctl *ctl, const struct command *cmd, const char *fmt, ...)
{
	char message[512];
	va_list ap;

	va_start(ap, fmt);
	(void)vsnprintf(message, sizeof(message), fmt, ap);
	va_end(ap);
	if (cmd != NULL)
		return fail(
		    ctl, CTL_EXIT_USAGE, "%s; see 'tandemctl %s --help'", message, cmd->name);
	return fail(ctl, CTL_EXIT_USAGE, "%s; see 'tandemctl --help'", message);
}

/* The round trip */

static const char *
service_name(void)
{
	const char *name = getenv("TANDEM_CTL_SERVICE");

	return name != NULL && name[0] != '\0' ? name : CTL_SERVICE_NAME;
}

static int
reply_exit_code(json_t *reply)
{
	json_t *code = json_object_get(reply, "exit");
	json_int_t v;

	if (!json_is_integer(code))
		return CTL_EXIT_FAILED;
	v = json_integer_value(code);
	return v >= 1 && v <= 125 ? (int)v : CTL_EXIT_FAILED;
}

/*
 * Sends request (borrowed) and waits up to timeout_ms for the reply.
 * Returns 0 and sets *ret_reply to an {"ok": true} reply (the caller owns
 * it); otherwise reports the failure and returns tandemctl's exit code.
 */
static int
call(const struct ctl *ctl, json_t *request, int timeout_ms, json_t **ret_reply)
{
	struct qb_ipc_request_header hdr;
	struct qb_ipc_response_header *rhdr;
	struct iovec iov[2];
	qb_ipcc_connection_t *conn;
	char *text = NULL, *buf = NULL;
	json_t *reply = NULL;
	json_error_t err;
	size_t len;
	ssize_t n;
	int ret;

	text = json_dumps(request, JSON_COMPACT);
	buf = malloc(CTL_MAX_MSG);
	if (text == NULL || buf == NULL) {
		ret = fail(ctl, CTL_EXIT_FAILED, "out of memory");
		goto cleanup;
	}
	len = strlen(text) + 1;
	if (sizeof(hdr) + len > CTL_MAX_MSG) {
		ret = fail(ctl, CTL_EXIT_USAGE, "the request is too long (%zu bytes)", len);
		goto cleanup;
	}

	conn = qb_ipcc_connect(service_name(), CTL_MAX_MSG);
	if (conn == NULL) {
		int e = errno;

		if (e == EACCES || e == EPERM)
			ret = fail(ctl, CTL_EXIT_NO_DAEMON,
			    "tandemd refused the connection (connect: %s); run tandemctl as root",
			    strerror(e));
		else
			ret = fail(ctl, CTL_EXIT_NO_DAEMON,
			    "tandemd is not running on this node (connect: %s)", strerror(e));
		goto cleanup;
	}

	memset(&hdr, 0, sizeof(hdr));
	hdr.id = CTL_MSG_REQUEST;
	hdr.size = (int32_t)(sizeof(hdr) + len);
	iov[0].iov_base = &hdr;
	iov[0].iov_len = sizeof(hdr);
	iov[1].iov_base = text;
	iov[1].iov_len = len;
	n = qb_ipcc_sendv_recv(conn, iov, 2, buf, CTL_MAX_MSG, timeout_ms);
	qb_ipcc_disconnect(conn);
	if (n == -ETIMEDOUT) {
		ret = fail(ctl, CTL_EXIT_NO_DAEMON, "tandemd did not answer within %d s",
		    timeout_ms / 1000);
		goto cleanup;
	}
	if (n < 0) {
		ret = fail(ctl, CTL_EXIT_NO_DAEMON, "lost the connection to tandemd (%s)",
		    strerror((int)-n));
		goto cleanup;
	}

	rhdr = (struct qb_ipc_response_header *)buf;
	if ((size_t)n <= sizeof(*rhdr) || rhdr->id != CTL_MSG_REQUEST || rhdr->size != n) {
		ret = fail(ctl, CTL_EXIT_FAILED, "tandemd sent a malformed reply");
		goto cleanup;
	}
	len = (size_t)n - sizeof(*rhdr);
	if (buf[n - 1] == '\0')
		len--;
	/* A text value may hold a NUL (\u0000). */
	reply = json_loadb(buf + sizeof(*rhdr), len, JSON_ALLOW_NUL, &err);
	if (!json_is_object(reply) || !json_is_boolean(json_object_get(reply, "ok"))) {
		ret = fail(ctl, CTL_EXIT_FAILED, "tandemd sent a malformed reply");
		goto cleanup;
	}
	if (!json_is_true(json_object_get(reply, "ok"))) {
		json_t *e = json_object_get(reply, "error");
		const char *msg = json_is_string(e) ? json_string_value(e) : "request refused";
		bool json = ctl->json;
		struct ctl quiet = {.json = false};

		ret = reply_exit_code(reply);
		/* With --json the daemon's error document is the output. */
		if (json) {
			(void)json_object_set_new(reply, "exit", json_integer(ret));
			print_json(reply);
		}
		(void)fail(&quiet, ret, "%s", msg);
		goto cleanup;
	}
	*ret_reply = reply;
	reply = NULL;
	ret = CTL_EXIT_OK;

cleanup:
	json_decref(reply);
	free(buf);
	free(text);
	return ret;
}

/* status */

static const char *
str_or(json_t *obj, const char *key, const char *dflt)
{
	json_t *v = json_object_get(obj, key);

	return json_is_string(v) ? json_string_value(v) : dflt;
}

/* "n1 (id 1), primary, active" */
static void
print_node(json_t *node)
{
	json_t *id = json_object_get(node, "id");

	(void)printf("%s", str_or(node, "name", "?"));
	if (json_is_integer(id))
		(void)printf(" (id %" JSON_INTEGER_FORMAT ")", json_integer_value(id));
	(void)printf(", %s, %s", str_or(node, "identity", "?"), str_or(node, "state", "?"));
}

static void
print_int_field(const char *label, json_t *obj, const char *key)
{
	json_t *v = json_object_get(obj, key);

	if (json_is_integer(v))
		(void)printf("%s%" JSON_INTEGER_FORMAT, label, json_integer_value(v));
	else
		(void)printf("%s?", label);
}

static void
print_status(json_t *reply)
{
	json_t *node = json_object_get(reply, "node");
	json_t *peers = json_object_get(reply, "peers");
	json_t *vip = json_object_get(reply, "vip");
	json_t *repl = json_object_get(reply, "replication");
	json_t *fencing = json_object_get(reply, "fencing");
	json_t *warnings = json_object_get(reply, "warnings");
	json_t *quorate = json_object_get(reply, "quorate");
	json_t *peer, *w;
	size_t i;

	(void)printf("node:        ");
	print_node(node);
	(void)printf(", version %s\n", str_or(node, "version", "?"));

	if (json_array_size(peers) == 0)
		(void)printf("peer:        none\n");
	json_array_foreach(peers, i, peer)
	{
		const char *process = str_or(peer, "process", NULL);

		(void)printf("peer:        ");
		print_node(peer);
		(void)printf(", %s",
		    json_is_true(json_object_get(peer, "member")) ? "member" : "NOT a member");
		if (process != NULL && strcmp(process, "member") != 0)
			(void)printf(", tandemd %s", process);
		if (json_is_string(json_object_get(peer, "version")))
			(void)printf(", version %s", str_or(peer, "version", "?"));
		(void)printf("\n");
	}

	(void)printf("quorum:      %s\n",
	    json_is_boolean(quorate) ? (json_is_true(quorate) ? "quorate" : "NOT quorate") : "?");
	(void)printf("redundancy:  %s\n", str_or(reply, "redundancy", "?"));

	(void)printf("vip:         %s", str_or(vip, "address", "none"));
	if (json_is_string(json_object_get(vip, "interface")))
		(void)printf(" on %s", str_or(vip, "interface", "?"));
	(void)printf(", held by %s\n", str_or(vip, "holder", "nobody"));

	(void)printf("replication: %s", str_or(repl, "mode", "?"));
	print_int_field(", epoch ", repl, "epoch");
	print_int_field(", seq ", repl, "seq");
	print_int_field(", lag ", repl, "lag");
	(void)printf("\n");

	if (json_is_true(json_object_get(fencing, "enabled"))) {
		const char *last_error = str_or(fencing, "last_error", NULL);

		(void)printf("fencing:     enabled, agent %s, %s", str_or(fencing, "agent", "?"),
		    str_or(fencing, "state", "?"));
		if (last_error != NULL)
			(void)printf(" (last error: %s)", last_error);
		(void)printf("\n");
	} else {
		(void)printf("fencing:     DISABLED\n");
	}

	json_array_foreach(warnings, i, w)
	{
		if (json_is_string(w))
			(void)printf("WARNING: %s\n", json_string_value(w));
	}
}

/* Refuses options and arguments a command does not take; handles --help. */
static int
check_no_args(
    const struct ctl *ctl, const struct command *cmd, int argc, char **argv, bool *ret_help)
{
	int i;

	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
			*ret_help = true;
			return 0;
		}
		if (argv[i][0] == '-')
			return usage_error(ctl, cmd, "unknown option '%s'", argv[i]);
		return usage_error(ctl, cmd, "unexpected argument '%s'", argv[i]);
	}
	return 0;
}

static int
cmd_status(struct ctl *ctl, int argc, char **argv)
{
	const struct command *cmd = &commands[0];
	json_t *request, *reply = NULL;
	bool help = false;
	int ret;

	ret = check_no_args(ctl, cmd, argc, argv, &help);
	if (ret != 0)
		return ret;
	if (help)
		return print_help(ctl, cmd);
	request = json_pack("{s:s}", "command", "status");
	if (request == NULL)
		return fail(ctl, CTL_EXIT_FAILED, "out of memory");
	ret = call(ctl, request, STATUS_TIMEOUT_MS, &reply);
	json_decref(request);
	if (ret != 0)
		return ret;
	if (ctl->json)
		print_json(reply);
	else
		print_status(reply);
	json_decref(reply);
	return CTL_EXIT_OK;
}

/* failover */

static int
cmd_failover(struct ctl *ctl, int argc, char **argv)
{
	const struct command *cmd = &commands[1];
	const char *to = NULL;
	bool force = false;
	json_t *request, *reply = NULL, *epoch;
	int i, ret;

	for (i = 1; i < argc; i++) {
		const char *a = argv[i];

		if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0)
			return print_help(ctl, cmd);
		if (strcmp(a, "--force") == 0) {
			force = true;
		} else if (strcmp(a, "--to") == 0) {
			if (i + 1 >= argc)
				return usage_error(ctl, cmd, "option '--to' needs a node name");
			to = argv[++i];
		} else if (strncmp(a, "--to=", 5) == 0) {
			to = a + 5;
		} else if (a[0] == '-') {
			return usage_error(ctl, cmd, "unknown option '%s'", a);
		} else {
			return usage_error(ctl, cmd, "unexpected argument '%s'", a);
		}
	}
	if (to != NULL && (to[0] == '\0' || to[0] == '-'))
		return usage_error(ctl, cmd, "'%s' is not a node name", to);

	request = json_pack("{s:s, s:s?, s:b}", "command", "failover", "to", to, "force", force);
	if (request == NULL)
		return fail(ctl, CTL_EXIT_FAILED, "out of memory");
	ret = call(ctl, request, FAILOVER_TIMEOUT_MS, &reply);
	json_decref(request);
	if (ret != 0)
		return ret;
	if (ctl->json) {
		print_json(reply);
	} else if (json_is_string(json_object_get(reply, "active"))) {
		epoch = json_object_get(reply, "epoch");
		(void)printf("%s is active", str_or(reply, "active", "?"));
		if (json_is_integer(epoch))
			(void)printf(
			    " (epoch %" JSON_INTEGER_FORMAT ")", json_integer_value(epoch));
		(void)printf("\n");
	} else {
		(void)printf("failover done\n");
	}
	json_decref(reply);
	return CTL_EXIT_OK;
}

/* log-level */

static int
cmd_log_level(struct ctl *ctl, int argc, char **argv)
{
	const struct command *cmd = &commands[2];
	const char *level = NULL;
	json_t *request, *reply = NULL;
	int i, ret;

	for (i = 1; i < argc; i++) {
		const char *a = argv[i];

		if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0)
			return print_help(ctl, cmd);
		if (a[0] == '-')
			return usage_error(ctl, cmd, "unknown option '%s'", a);
		if (level != NULL)
			return usage_error(ctl, cmd, "unexpected argument '%s'", a);
		if (a[0] == '\0')
			return usage_error(ctl, cmd, "the log level is empty");
		level = a;
	}

	request = json_pack("{s:s, s:s?}", "command", "log-level", "level", level);
	if (request == NULL)
		return fail(ctl, CTL_EXIT_FAILED, "out of memory");
	ret = call(ctl, request, LOG_LEVEL_TIMEOUT_MS, &reply);
	json_decref(request);
	if (ret != 0)
		return ret;
	if (ctl->json)
		print_json(reply);
	else if (level == NULL)
		(void)printf("%s\n", str_or(reply, "level", "?"));
	else
		(void)printf("log level set to %s\n", str_or(reply, "level", level));
	json_decref(reply);
	return CTL_EXIT_OK;
}

/* db */

/* The first of db's entries in the table (the one help and errors name). */
static const struct command *
db_command(void)
{
	size_t i;

	for (i = 0; i < N_COMMANDS; i++) {
		if (strcmp(commands[i].name, "db") == 0)
			return &commands[i];
	}
	abort();
}

static bool
is_help(const char *a)
{
	return strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0;
}

/* An argument starting with '-' is an option, unless it holds white space (SQL comment). */
static bool
is_option(const char *a)
{
	return a[0] == '-' && strpbrk(a, " \t\n") == NULL;
}

static int
b64_value(int c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

/*
 * Prints padded base64 s as x'hex' on f (f NULL: only checks it).
 * Returns 0, or -EINVAL for bad base64.
 */
static int
print_blob(FILE *f, const char *s, size_t len)
{
	unsigned int acc = 0;
	size_t i, pad = 0;
	int bits = 0, v;

	if (len % 4 != 0)
		return -EINVAL;
	if (len > 0 && s[len - 1] == '=')
		pad++;
	if (len > 1 && s[len - 2] == '=')
		pad++;
	if (f != NULL)
		(void)fputs("x'", f);
	for (i = 0; i < len - pad; i++) {
		v = b64_value((unsigned char)s[i]);
		if (v < 0)
			return -EINVAL;
		acc = (acc << 6) | (unsigned int)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			if (f != NULL)
				(void)fprintf(f, "%02x", (acc >> bits) & 0xffu);
		}
	}
	if (f != NULL)
		(void)fputc('\'', f);
	return 0;
}

/* A real as the shortest text that reads back the same, always with a '.' or an exponent. */
static void
print_real(FILE *f, double d)
{
	char buf[64];

	(void)snprintf(buf, sizeof(buf), "%.15g", d);
	if (strtod(buf, NULL) != d)
		(void)snprintf(buf, sizeof(buf), "%.17g", d);
	if (strpbrk(buf, ".eEni") == NULL)
		(void)strcat(buf, ".0");
	(void)fputs(buf, f);
}

/* Prints one value of a row (f NULL: only checks it).  Returns 0 or -EINVAL. */
static int
print_value(FILE *f, json_t *v)
{
	json_t *blob;

	switch (json_typeof(v)) {
	case JSON_NULL:
		if (f != NULL)
			(void)fputs("NULL", f);
		return 0;
	case JSON_INTEGER:
		if (f != NULL)
			(void)fprintf(f, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
		return 0;
	case JSON_REAL:
		if (f != NULL)
			print_real(f, json_real_value(v));
		return 0;
	case JSON_STRING:
		if (f != NULL)
			(void)fwrite(json_string_value(v), 1, json_string_length(v), f);
		return 0;
	case JSON_OBJECT:
		blob = json_object_get(v, "blob");
		if (!json_is_string(blob))
			return -EINVAL;
		return print_blob(f, json_string_value(blob), json_string_length(blob));
	case JSON_ARRAY:
	case JSON_TRUE:
	case JSON_FALSE:
		return -EINVAL;
	}
	return -EINVAL;
}

/* Prints a db-query reply as text (f NULL: only checks it).  Returns 0 or -EINVAL. */
static int
print_rows(FILE *f, json_t *reply)
{
	json_t *columns = json_object_get(reply, "columns");
	json_t *rows = json_object_get(reply, "rows");
	json_t *row, *v;
	size_t i, j;

	if (!json_is_array(columns) || !json_is_array(rows))
		return -EINVAL;
	json_array_foreach(columns, j, v)
	{
		if (!json_is_string(v))
			return -EINVAL;
		if (f != NULL)
			(void)fprintf(f, "%s%s", j > 0 ? "\t" : "", json_string_value(v));
	}
	if (f != NULL)
		(void)fputc('\n', f);
	json_array_foreach(rows, i, row)
	{
		if (!json_is_array(row) || json_array_size(row) != json_array_size(columns))
			return -EINVAL;
		json_array_foreach(row, j, v)
		{
			if (f != NULL && j > 0)
				(void)fputc('\t', f);
			if (print_value(f, v) < 0)
				return -EINVAL;
		}
		if (f != NULL)
			(void)fputc('\n', f);
	}
	return 0;
}

static const char *
int_text(json_t *obj, const char *key, char *buf, size_t len)
{
	json_t *v = json_object_get(obj, key);

	if (!json_is_integer(v))
		return "?";
	(void)snprintf(buf, len, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
	return buf;
}

static int
cmd_db(struct ctl *ctl, int argc, char **argv)
{
	const struct command *cmd = db_command();
	char a1[32], a2[32], a3[32];
	json_t *request, *list, *reply = NULL;
	const char *sub;
	int i, n_sql, ret;

	if (argc < 2)
		return usage_error(ctl, cmd, "db needs a subcommand: exec, query or hash");
	sub = argv[1];
	if (is_help(sub))
		return print_help(ctl, cmd);
	if (strcmp(sub, "exec") != 0 && strcmp(sub, "query") != 0 && strcmp(sub, "hash") != 0)
		return usage_error(ctl, cmd, "unknown db subcommand '%s'", sub);
	for (i = 2; i < argc; i++) {
		if (is_help(argv[i]))
			return print_help(ctl, cmd);
		if (is_option(argv[i]))
			return usage_error(ctl, cmd, "unknown option '%s'", argv[i]);
		if (argv[i][0] == '\0')
			return usage_error(ctl, cmd, "the SQL is empty");
	}
	n_sql = argc - 2;

	if (strcmp(sub, "hash") == 0) {
		if (n_sql > 0)
			return usage_error(ctl, cmd, "unexpected argument '%s'", argv[2]);
		request = json_pack("{s:s}", "command", "db-hash");
	} else if (n_sql == 0) {
		return usage_error(ctl, cmd, "db %s needs SQL", sub);
	} else if (strcmp(sub, "query") == 0) {
		if (n_sql > 1)
			return usage_error(ctl, cmd,
			    "db query runs one statement; unexpected argument '%s'", argv[3]);
		request = json_pack("{s:s, s:s}", "command", "db-query", "sql", argv[2]);
		if (request == NULL)
			return usage_error(ctl, cmd, "the SQL is not valid UTF-8");
	} else {
		request = json_pack("{s:s, s:[]}", "command", "db-exec", "statements");
		list = json_object_get(request, "statements");
		for (i = 2; request != NULL && i < argc; i++) {
			if (json_array_append_new(list, json_pack("{s:s}", "sql", argv[i])) < 0) {
				json_decref(request);
				return usage_error(ctl, cmd, "the SQL is not valid UTF-8");
			}
		}
	}
	if (request == NULL)
		return fail(ctl, CTL_EXIT_FAILED, "out of memory");
	ret = call(ctl, request, DB_TIMEOUT_MS, &reply);
	json_decref(request);
	if (ret != 0)
		return ret;

	if (strcmp(sub, "query") == 0 && print_rows(NULL, reply) < 0) {
		json_decref(reply);
		return fail(ctl, CTL_EXIT_FAILED, "tandemd sent a malformed reply");
	}
	if (ctl->json)
		print_json(reply);
	else if (strcmp(sub, "query") == 0)
		(void)print_rows(stdout, reply);
	else if (strcmp(sub, "exec") == 0)
		(void)printf("committed: %s row(s) changed at epoch %s seq %s\n",
		    int_text(reply, "changes", a1, sizeof(a1)),
		    int_text(reply, "epoch", a2, sizeof(a2)),
		    int_text(reply, "seq", a3, sizeof(a3)));
	else
		(void)printf("%s at epoch %s seq %s\n", str_or(reply, "hash", "?"),
		    int_text(reply, "epoch", a2, sizeof(a2)),
		    int_text(reply, "seq", a3, sizeof(a3)));
	json_decref(reply);
	return CTL_EXIT_OK;
}

/* main */

int
main(int argc, char **argv)
{
	struct ctl ctl = {.json = false};
	const struct command *cmd = NULL;
	bool help = false, version = false, rest_only = false;
	const char *bad_option = NULL;
	char **args;
	int n_args = 0, i, ret;
	size_t j;

	/* A reply to a tandemctl that is gone must not kill it with SIGPIPE first. */
	(void)signal(SIGPIPE, SIG_IGN);

	/*
	 * Global options may come anywhere; --help after the command is the
	 * command's own help.  Everything else goes to the command.
	 */
	args = calloc((size_t)argc + 1, sizeof(*args));
	if (args == NULL) {
		(void)fprintf(stderr, "tandemctl: out of memory\n");
		return CTL_EXIT_FAILED;
	}
	for (i = 1; i < argc; i++) {
		const char *a = argv[i];

		if (!rest_only && strcmp(a, "--json") == 0) {
			ctl.json = true;
		} else if (!rest_only && strcmp(a, "--version") == 0) {
			version = true;
		} else if (n_args == 0 && (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0)) {
			help = true;
		} else if (!rest_only && strcmp(a, "--") == 0) {
			rest_only = true;
		} else if (!rest_only && n_args == 0 && a[0] == '-') {
			if (bad_option == NULL)
				bad_option = a;
		} else {
			args[n_args++] = argv[i];
		}
	}

	if (bad_option != NULL) {
		ret = usage_error(&ctl, NULL, "unknown option '%s'", bad_option);
		goto out;
	}
	if (version) {
		if (ctl.json) {
			json_t *obj = json_pack("{s:b, s:s}", "ok", 1, "version", TANDEM_VERSION);

			if (obj != NULL)
				print_json(obj);
			json_decref(obj);
		} else {
			(void)printf("tandemctl %s\n", TANDEM_VERSION);
		}
		ret = CTL_EXIT_OK;
		goto out;
	}
	if (help) {
		ret = print_help(&ctl, NULL);
		goto out;
	}
	if (n_args == 0) {
		ret = usage_error(&ctl, NULL, "no command given");
		goto out;
	}
	for (j = 0; j < N_COMMANDS; j++) {
		if (cmd == NULL && strcmp(args[0], commands[j].name) == 0)
			cmd = &commands[j];
	}
	if (cmd == NULL) {
		ret = usage_error(&ctl, NULL, "unknown command '%s'", args[0]);
		goto out;
	}
	ret = cmd->fn(&ctl, n_args, args);

out:
	free(args);
	if (fflush(stdout) != 0 && ret == CTL_EXIT_OK) {
		(void)fprintf(stderr, "tandemctl: cannot write the output: %s\n", strerror(errno));
		ret = CTL_EXIT_FAILED;
	}
	return ret;
}
