/*
 * config: tandem.conf read into a struct config, and printed back.
 *
 * This file owns the format: the sections and keys, their defaults, units
 * and limits, and the one-line errors an admin sees when the file is wrong.
 * libinih splits lines into sections and key = value pairs.  A line reader
 * wrapped around its stream parser counts lines (the handler is not told
 * which line it is on), ignores leading whitespace (so an indented key is a
 * key, not libinih's continuation of the previous value), refuses lines
 * longer than libinih's buffer (it would split them silently), and checks
 * each line before libinih sees it, so that a syntax error or an unknown or
 * empty section gets a message of its own instead of a bare line number.
 *
 * Rule 5: bad input gets a clear error and changes nothing.  config_load
 * builds the config aside and hands it over only when the whole file is
 * valid; the first error is the one reported.
 */
#include "config.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <ini.h>
#include <limits.h>
#include <net/if.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>

/* qb's LOG_TRACE: one below LOG_DEBUG. */
#define CONFIG_LOG_TRACE (LOG_DEBUG + 1)

/*
 * libinih keeps the section name in a 50-byte buffer and cuts longer ones
 * without a word; "fence:" takes 6 of the 49 characters.
 */
#define SECTION_MAX 49
#define NODE_NAME_MAX (SECTION_MAX - 6)

enum section_id {
	SEC_NONE,
	SEC_TANDEM,
	SEC_VIP,
	SEC_FENCE,
	SEC_REPLICATION,
	SEC_FENCE_NODE,
};

static const char *const section_names[] = {
    [SEC_NONE] = "",
    [SEC_TANDEM] = "tandem",
    [SEC_VIP] = "vip",
    [SEC_FENCE] = "fence",
    [SEC_REPLICATION] = "replication",
    [SEC_FENCE_NODE] = "fence:NODE",
};

enum key_id {
	K_STATE_DIR,
	K_LOG_LEVEL,
	K_PRIMARY,
	K_HEARTBEAT_INTERVAL,
	K_HEARTBEAT_TIMEOUT,
	K_STARTUP_GRACE,
	K_ADDRESS,
	K_INTERFACE,
	K_ANNOUNCE_COUNT,
	K_ANNOUNCE_INTERVAL,
	K_LIFETIME,
	K_AGENT,
	K_FENCE_TIMEOUT,
	K_RETRIES,
	K_RETRY_INTERVAL,
	K_DELAY,
	K_MODE,
	K_PORT,
	K_LISTEN,
	K_CA,
	K_CERT,
	K_KEY,
	K_REPL_TIMEOUT,
	K_BACKLOG,
	K_SNAPSHOT_WAL,
	K_COUNT,
};

static const struct key_def {
	enum section_id section;
	const char *name;
} keys[K_COUNT] = {
    [K_STATE_DIR] = {SEC_TANDEM, "state_dir"},
    [K_LOG_LEVEL] = {SEC_TANDEM, "log_level"},
    [K_PRIMARY] = {SEC_TANDEM, "primary"},
    [K_HEARTBEAT_INTERVAL] = {SEC_TANDEM, "heartbeat_interval"},
    [K_HEARTBEAT_TIMEOUT] = {SEC_TANDEM, "heartbeat_timeout"},
    [K_STARTUP_GRACE] = {SEC_TANDEM, "startup_grace"},
    [K_ADDRESS] = {SEC_VIP, "address"},
    [K_INTERFACE] = {SEC_VIP, "interface"},
    [K_ANNOUNCE_COUNT] = {SEC_VIP, "announce_count"},
    [K_ANNOUNCE_INTERVAL] = {SEC_VIP, "announce_interval"},
    [K_LIFETIME] = {SEC_VIP, "lifetime"},
    [K_AGENT] = {SEC_FENCE, "agent"},
    [K_FENCE_TIMEOUT] = {SEC_FENCE, "timeout"},
    [K_RETRIES] = {SEC_FENCE, "retries"},
    [K_RETRY_INTERVAL] = {SEC_FENCE, "retry_interval"},
    [K_DELAY] = {SEC_FENCE, "delay"},
    [K_MODE] = {SEC_REPLICATION, "mode"},
    [K_PORT] = {SEC_REPLICATION, "port"},
    [K_LISTEN] = {SEC_REPLICATION, "listen"},
    [K_CA] = {SEC_REPLICATION, "ca"},
    [K_CERT] = {SEC_REPLICATION, "cert"},
    [K_KEY] = {SEC_REPLICATION, "key"},
    [K_REPL_TIMEOUT] = {SEC_REPLICATION, "timeout"},
    [K_BACKLOG] = {SEC_REPLICATION, "backlog"},
    [K_SNAPSHOT_WAL] = {SEC_REPLICATION, "snapshot_wal"},
};

static const struct {
	const char *name;
	int level;
} log_levels[] = {
    {"err", LOG_ERR},
    {"warning", LOG_WARNING},
    {"notice", LOG_NOTICE},
    {"info", LOG_INFO},
    {"debug", LOG_DEBUG},
    {"trace", CONFIG_LOG_TRACE},
};

/* Upper limits for the plain counts: beyond them a value is a typo. */
#define ANNOUNCE_COUNT_MAX 100
#define RETRIES_MAX 100
#define BACKLOG_MAX_MIB 4096
#define SNAPSHOT_WAL_MAX_MIB (1024u * 1024u) /* 1 TiB */

struct parse {
	const char *path;
	FILE *file;
	struct config *c;
	unsigned int line;
	/* Where each key and fixed section was set (0: not set). */
	unsigned int key_line[K_COUNT];
	unsigned int section_line[SEC_FENCE_NODE];
	/* The section being read, and its name as written. */
	enum section_id section;
	char section_name[SECTION_MAX + 1];
	struct config_fence_node *node;
	/* The first error: -EINVAL, -ENOMEM or a read error; msg names it. */
	int error;
	char msg[1024];
};

static int __attribute__((format(printf, 3, 4)))
fail(struct parse *p, unsigned int line, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (p->error)
		return 0;
	p->error = -EINVAL;
	if (line)
		n = snprintf(p->msg, sizeof(p->msg), "%s:%u: ", p->path, line);
	else
		n = snprintf(p->msg, sizeof(p->msg), "%s: ", p->path);
	if (n < 0 || (size_t)n >= sizeof(p->msg))
		return 0;
	va_start(ap, fmt);
	(void)vsnprintf(p->msg + n, sizeof(p->msg) - (size_t)n, fmt, ap);
	va_end(ap);
	/* libinih's handlers return 0 for an error. */
	return 0;
}

static int
fail_nomem(struct parse *p)
{
	(void)fail(p, 0, "out of memory");
	p->error = -ENOMEM;
	return 0;
}

/* Formats ms with the largest unit that keeps it exact, as the file takes it. */
static const char *
duration_text(uint64_t ms, char *buf, size_t len)
{
	if (ms != 0 && ms % 60000 == 0)
		(void)snprintf(buf, len, "%llum", (unsigned long long)(ms / 60000));
	else if (ms % 1000 == 0)
		(void)snprintf(buf, len, "%llus", (unsigned long long)(ms / 1000));
	else
		(void)snprintf(buf, len, "%llums", (unsigned long long)ms);
	return buf;
}

/*
 * Parses digits only (no sign, no blanks) into *ret.  Returns 0, -EINVAL
 * for anything else, -ERANGE above max.
 */
static int
parse_number(const char *text, const char **end, uint64_t max, uint64_t *ret)
{
	uint64_t v = 0;
	const char *s = text;

	if (!isdigit((unsigned char)*s))
		return -EINVAL;
	for (; isdigit((unsigned char)*s); s++) {
		unsigned int d = (unsigned int)(*s - '0');

		if (v > (max - d) / 10)
			return -ERANGE;
		v = v * 10 + d;
	}
	*end = s;
	*ret = v;
	return 0;
}

/*
 * config_parse_duration with the reasons told apart: -EINVAL garbage,
 * -EDOM a negative number, -ENODATA no unit, -ERANGE too large.
 */
static int
parse_duration(const char *text, unsigned int *ret_ms)
{
	const char *unit;
	uint64_t v, scale;
	int r;

	if (!text)
		return -EINVAL;
	if (text[0] == '-' && isdigit((unsigned char)text[1]))
		return -EDOM;
	r = parse_number(text, &unit, UINT64_MAX / 60000, &v);
	if (r == -ERANGE)
		return r;
	if (r < 0)
		return -EINVAL;
	if (strcmp(unit, "ms") == 0)
		scale = 1;
	else if (strcmp(unit, "s") == 0)
		scale = 1000;
	else if (strcmp(unit, "m") == 0)
		scale = 60000;
	else if (*unit == '\0')
		return -ENODATA;
	else
		return -EINVAL;
	if (v * scale > UINT_MAX)
		return -ERANGE;
	*ret_ms = (unsigned int)(v * scale);
	return 0;
}

int
config_parse_duration(const char *text, unsigned int *ret_ms)
{
	return parse_duration(text, ret_ms) < 0 ? -EINVAL : 0;
}

int
config_parse_log_level(const char *text, int *ret_level)
{
	size_t i;

	for (i = 0; text && i < sizeof(log_levels) / sizeof(log_levels[0]); i++) {
		if (strcmp(text, log_levels[i].name) == 0) {
			*ret_level = log_levels[i].level;
			return 0;
		}
	}
	return -EINVAL;
}

const char *
config_log_level_name(int level)
{
	size_t i;

	for (i = 0; i < sizeof(log_levels) / sizeof(log_levels[0]); i++)
		if (log_levels[i].level == level)
			return log_levels[i].name;
	return "unknown";
}

const struct config_fence_node *
config_fence_node(const struct config *c, const char *node)
{
	unsigned int i;

	for (i = 0; c && node && i < c->n_fence_nodes; i++)
		if (strcmp(c->fence_nodes[i].node, node) == 0)
			return &c->fence_nodes[i];
	return NULL;
}

/* NULL when name can be a corosync node name here, else what is wrong with it. */
static const char *
node_name_problem(const char *name)
{
	const char *s;

	if (*name == '\0')
		return "is empty";
	if (strlen(name) > NODE_NAME_MAX)
		return "is too long, use at most 43 characters";
	for (s = name; *s; s++)
		if (!isalnum((unsigned char)*s) && !strchr("._-", *s))
			return "may only have letters, digits, '.', '_' and '-'";
	return NULL;
}

/* --- lines ---------------------------------------------------------------- */

/*
 * libinih's rule for where a value or a section name ends: at one of chars,
 * or at a ';' that follows whitespace (an inline comment).
 */
static const char *
find_chars_or_comment(const char *s, const char *chars)
{
	int was_space = 0;

	while (*s && (!chars || !strchr(chars, *s)) && !(was_space && *s == ';')) {
		was_space = isspace((unsigned char)*s);
		s++;
	}
	return s;
}

static int
section_begin(struct parse *p, const char *name, size_t len)
{
	const char *problem;
	char *node;
	struct config_fence_node *fn;
	unsigned int i;

	if (len > SECTION_MAX)
		return fail(p, p->line,
		    "[%.*s]: section name is too long, use at most %d characters", (int)len, name,
		    SECTION_MAX);
	memcpy(p->section_name, name, len);
	p->section_name[len] = '\0';
	p->node = NULL;
	p->section = SEC_NONE;

	for (i = SEC_TANDEM; i <= SEC_REPLICATION; i++) {
		if (strcmp(p->section_name, section_names[i]) != 0)
			continue;
		if (p->section_line[i])
			return fail(p, p->line,
			    "[%s]: section appears twice (first on line %u), merge the two",
			    p->section_name, p->section_line[i]);
		p->section_line[i] = p->line;
		p->section = (enum section_id)i;
		return 1;
	}
	if (strncmp(p->section_name, "fence:", 6) != 0)
		return fail(p, p->line,
		    "[%s]: unknown section, use [tandem], [vip], [fence], [replication] or "
		    "[fence:NODE]",
		    p->section_name);

	node = p->section_name + 6;
	problem = node_name_problem(node);
	if (problem)
		return fail(p, p->line, "[%s]: node name '%s' %s", p->section_name, node, problem);
	for (i = 0; i < p->c->n_fence_nodes; i++)
		if (strcmp(p->c->fence_nodes[i].node, node) == 0)
			return fail(p, p->line, "[%s]: section appears twice, merge the two",
			    p->section_name);
	if (p->c->n_fence_nodes == CONFIG_MAX_FENCE_NODES)
		return fail(p, p->line, "[%s]: too many [fence:NODE] sections, use at most %d",
		    p->section_name, CONFIG_MAX_FENCE_NODES);
	fn = &p->c->fence_nodes[p->c->n_fence_nodes];
	fn->node = strdup(node);
	if (!fn->node)
		return fail_nomem(p);
	fn->n_options = 0;
	p->c->n_fence_nodes++;
	p->node = fn;
	p->section = SEC_FENCE_NODE;
	return 1;
}

/* Checks one line, leading whitespace gone, as libinih will read it. */
static int
check_line(struct parse *p, const char *s)
{
	const char *end, *rest;
	int len = (int)strcspn(s, "\r\n");

	if (*s == '\0' || *s == '\r' || *s == '\n' || *s == ';' || *s == '#')
		return 1;
	if (*s == '[') {
		end = find_chars_or_comment(s + 1, "]");
		if (*end != ']')
			return fail(p, p->line,
			    "'%.*s': section header has no closing ']', write it as [name]", len,
			    s);
		for (rest = end + 1; isspace((unsigned char)*rest); rest++)
			;
		if (*rest && *rest != ';' && *rest != '#')
			return fail(
			    p, p->line, "'%.*s': text after the section header, remove it", len, s);
		return section_begin(p, s + 1, (size_t)(end - s - 1));
	}
	end = find_chars_or_comment(s, "=:");
	if (*end != '=' && *end != ':')
		return fail(p, p->line,
		    "'%.*s' is not 'key = value', a [section] or a comment, fix the line", len, s);
	return 1;
}

/* libinih's line reader: fgets, plus the checks above. */
static char *
read_line(char *buf, int size, void *data)
{
	struct parse *p = data;
	size_t len;
	char *s;
	int c;

	if (p->error)
		return NULL;
	errno = 0;
	if (!fgets(buf, size, p->file)) {
		if (ferror(p->file)) {
			int e = errno ? errno : EIO;

			(void)fail(p, 0, "cannot read: %s", strerror(e));
			p->error = -e;
		}
		return NULL;
	}
	p->line++;
	len = strlen(buf);
	if (len == (size_t)size - 1 && buf[len - 1] != '\n') {
		c = getc(p->file);
		if (c != EOF) {
			(void)fail(
			    p, p->line, "line is longer than %d characters, shorten it", size - 2);
			return NULL;
		}
	}
	s = buf;
	if (p->line == 1 && strncmp(s, "\xef\xbb\xbf", 3) == 0)
		s += 3;
	while (isspace((unsigned char)*s) && *s != '\n')
		s++;
	memmove(buf, s, strlen(s) + 1);
	if (!check_line(p, buf))
		return NULL;
	return buf;
}

/* --- values --------------------------------------------------------------- */

static int __attribute__((format(printf, 3, 4)))
key_fail(struct parse *p, enum key_id k, const char *fmt, ...)
{
	char what[512];
	va_list ap;

	va_start(ap, fmt);
	(void)vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	return fail(p, p->line, "[%s] %s: %s", section_names[keys[k].section], keys[k].name, what);
}

static int
set_string(struct parse *p, char **field, const char *value)
{
	*field = strdup(value);
	return *field ? 1 : fail_nomem(p);
}

static int
set_duration(
    struct parse *p, enum key_id k, const char *value, unsigned int min_ms, unsigned int *field)
{
	char buf[32];
	unsigned int ms;

	switch (parse_duration(value, &ms)) {
	case 0:
		break;
	case -EDOM:
		return key_fail(p, k, "'%s' is negative, use a duration such as 500ms", value);
	case -ENODATA:
		return key_fail(
		    p, k, "'%s' has no unit, add ms, s or m (such as %ss)", value, value);
	case -ERANGE:
		return key_fail(
		    p, k, "'%s' is too large, use at most %um", value, UINT_MAX / 60000);
	default:
		return key_fail(p, k,
		    "'%s' is not a duration, use a whole number and a unit: ms, s or m (such as "
		    "500ms)",
		    value);
	}
	if (ms < min_ms && min_ms == 1)
		return key_fail(p, k, "'%s' must be more than zero", value);
	if (ms < min_ms)
		return key_fail(p, k, "'%s' is too short, use at least %s", value,
		    duration_text(min_ms, buf, sizeof(buf)));
	*field = ms;
	return 1;
}

static int
set_count(struct parse *p, enum key_id k, const char *value, unsigned int min, unsigned int max,
    unsigned int *field)
{
	const char *end;
	uint64_t v;
	int r;

	if (value[0] == '-' && isdigit((unsigned char)value[1]))
		return key_fail(p, k, "'%s' is negative, use %u to %u", value, min, max);
	r = parse_number(value, &end, UINT64_MAX, &v);
	if (r == -ERANGE || (r == 0 && *end == '\0' && v > max))
		return key_fail(p, k, "'%s' is too large, use %u to %u", value, min, max);
	if (r < 0 || *end != '\0')
		return key_fail(p, k, "'%s' is not a whole number, use %u to %u", value, min, max);
	if (v < min)
		return key_fail(p, k, "'%s' is too small, use %u to %u", value, min, max);
	*field = (unsigned int)v;
	return 1;
}

static int
set_address(struct parse *p, const char *value)
{
	const char *slash = strchr(value, '/'), *end;
	char host[INET6_ADDRSTRLEN + 1];
	unsigned char bin[sizeof(struct in6_addr)];
	size_t len = slash ? (size_t)(slash - value) : strlen(value);
	uint64_t prefix;
	unsigned int max;

	if (len == 0 || len >= sizeof(host))
		goto bad_address;
	memcpy(host, value, len);
	host[len] = '\0';
	if (inet_pton(AF_INET, host, bin) == 1)
		max = 32;
	else if (inet_pton(AF_INET6, host, bin) == 1)
		max = 128;
	else
		goto bad_address;
	if (slash && (parse_number(slash + 1, &end, UINT64_MAX, &prefix) < 0 || *end != '\0' ||
	                 prefix < 1 || prefix > max))
		return key_fail(p, K_ADDRESS,
		    "'%s' has a bad prefix length, use /1 to /%u (or none for /%u)", value, max,
		    max);
	return set_string(p, &p->c->vip_address, value);

bad_address:
	return key_fail(p, K_ADDRESS,
	    "'%s' is not an IPv4 or IPv6 address, use such as 192.0.2.50/24 or 2001:db8::50/64",
	    value);
}

static int
set_interface(struct parse *p, const char *value)
{
	const char *s;

	if (strlen(value) >= IFNAMSIZ)
		return key_fail(p, K_INTERFACE,
		    "'%s' is too long for an interface name, use at most %d characters", value,
		    IFNAMSIZ - 1);
	if (strcmp(value, ".") == 0 || strcmp(value, "..") == 0)
		return key_fail(
		    p, K_INTERFACE, "'%s' is not an interface name, use such as eth0", value);
	for (s = value; *s; s++)
		if (*s == '/' || *s == ':' || isspace((unsigned char)*s))
			return key_fail(p, K_INTERFACE,
			    "'%s' is not an interface name (no '/', ':' or blanks), use such as "
			    "eth0",
			    value);
	return set_string(p, &p->c->vip_interface, value);
}

/* An absolute path, replacing the default. */
static int
set_path(struct parse *p, enum key_id k, const char *value, char **field)
{
	if (value[0] != '/')
		return key_fail(p, k,
		    "'%s' is not an absolute path, use such as /etc/tandem/tls/%s", value,
		    k == K_CA     ? "ca.crt"
		    : k == K_CERT ? "node.crt"
		                  : "node.key");
	free(*field);
	*field = NULL;
	return set_string(p, field, value);
}

static int
set_listen(struct parse *p, const char *value)
{
	unsigned char bin[sizeof(struct in6_addr)];

	if (inet_pton(AF_INET, value, bin) != 1 && inet_pton(AF_INET6, value, bin) != 1)
		return key_fail(p, K_LISTEN,
		    "'%s' is not a numeric IPv4 or IPv6 address, use such as 192.0.2.11", value);
	return set_string(p, &p->c->repl_listen, value);
}

static int
set_key(struct parse *p, enum key_id k, const char *value)
{
	struct config *c = p->c;
	const char *problem;
	unsigned int ms;

	if (*value == '\0' && k == K_AGENT)
		return key_fail(
		    p, k, "is empty, set a fence agent (such as fence_ipmilan) or 'agent = none'");
	if (*value == '\0')
		return key_fail(p, k, "has no value, set one or remove the line for the default");

	switch (k) {
	case K_STATE_DIR:
		if (value[0] != '/')
			return key_fail(p, k,
			    "'%s' is not an absolute path, use such as /var/lib/tandem", value);
		free(c->state_dir);
		c->state_dir = NULL;
		return set_string(p, &c->state_dir, value);
	case K_LOG_LEVEL:
		if (config_parse_log_level(value, &c->log_level) < 0)
			return key_fail(p, k,
			    "'%s' is not a log level, use err, warning, notice, info, debug or "
			    "trace",
			    value);
		return 1;
	case K_PRIMARY:
		problem = node_name_problem(value);
		if (problem)
			return key_fail(p, k, "node name '%s' %s", value, problem);
		return set_string(p, &c->primary, value);
	case K_HEARTBEAT_INTERVAL:
		return set_duration(p, k, value, 1, &c->heartbeat_interval_ms);
	case K_HEARTBEAT_TIMEOUT:
		return set_duration(p, k, value, 1, &c->heartbeat_timeout_ms);
	case K_STARTUP_GRACE:
		return set_duration(p, k, value, 0, &c->startup_grace_ms);
	case K_ADDRESS:
		return set_address(p, value);
	case K_INTERFACE:
		return set_interface(p, value);
	case K_ANNOUNCE_COUNT:
		return set_count(p, k, value, 1, ANNOUNCE_COUNT_MAX, &c->announce_count);
	case K_ANNOUNCE_INTERVAL:
		return set_duration(p, k, value, 1, &c->announce_interval_ms);
	case K_LIFETIME:
		if (!set_duration(p, k, value, 3000, &ms))
			return 0;
		if (ms % 1000)
			return key_fail(p, k, "'%s' is not whole seconds, use such as %us", value,
			    ms / 1000 + 1);
		c->vip_lifetime_s = ms / 1000;
		return 1;
	case K_AGENT:
		if (strcmp(value, "none") == 0)
			return 1;
		return set_string(p, &c->fence_agent, value);
	case K_FENCE_TIMEOUT:
		return set_duration(p, k, value, 1, &c->fence_timeout_ms);
	case K_RETRIES:
		return set_count(p, k, value, 0, RETRIES_MAX, &c->fence_retries);
	case K_RETRY_INTERVAL:
		return set_duration(p, k, value, 1, &c->fence_retry_interval_ms);
	case K_DELAY:
		return set_duration(p, k, value, 0, &c->fence_delay_ms);
	case K_MODE:
		if (strcmp(value, "sync") == 0)
			c->repl_async = false;
		else if (strcmp(value, "async") == 0)
			c->repl_async = true;
		else
			return key_fail(p, k, "'%s' is not a mode, use sync or async", value);
		return 1;
	case K_PORT:
		return set_count(p, k, value, 1, 65535, &c->repl_port);
	case K_LISTEN:
		return set_listen(p, value);
	case K_CA:
		return set_path(p, k, value, &c->repl_ca);
	case K_CERT:
		return set_path(p, k, value, &c->repl_cert);
	case K_KEY:
		return set_path(p, k, value, &c->repl_key);
	case K_REPL_TIMEOUT:
		return set_duration(p, k, value, 1000, &c->repl_timeout_ms);
	case K_BACKLOG:
		return set_count(p, k, value, 1, BACKLOG_MAX_MIB, &c->repl_backlog_mib);
	case K_SNAPSHOT_WAL:
		return set_count(p, k, value, 1, SNAPSHOT_WAL_MAX_MIB, &c->repl_snapshot_wal_mib);
	case K_COUNT:
		break;
	}
	return 0;
}

/* A key = value line in [fence:NODE]: one more option for that node's agent. */
static int
set_fence_option(struct parse *p, const char *name, const char *value)
{
	struct config_fence_node *fn = p->node;
	size_t klen = strlen(name), vlen = strlen(value);
	const char *s;
	char *kv;
	unsigned int i;

	for (s = name; *s; s++)
		if (!isalnum((unsigned char)*s) && *s != '_' && *s != '-')
			return fail(p, p->line,
			    "[%s] %s: not a fence agent option name, use letters, digits, '_' and "
			    "'-'",
			    p->section_name, name);
	if (strcmp(name, "action") == 0 || strcmp(name, "nodename") == 0)
		return fail(p, p->line, "[%s] %s: tandemd sets this option itself, remove the line",
		    p->section_name, name);
	for (i = 0; i < fn->n_options; i++)
		if (strcmp(fn->options[i].key, name) == 0)
			return fail(
			    p, p->line, "[%s] %s: set twice, keep one", p->section_name, name);
	if (fn->n_options == CONFIG_MAX_FENCE_OPTIONS)
		return fail(p, p->line, "[%s] %s: too many options, use at most %d",
		    p->section_name, name, CONFIG_MAX_FENCE_OPTIONS);
	/* Key and value in one block, freed through the key. */
	kv = malloc(klen + 1 + vlen + 1);
	if (!kv)
		return fail_nomem(p);
	memcpy(kv, name, klen + 1);
	memcpy(kv + klen + 1, value, vlen + 1);
	fn->options[fn->n_options].key = kv;
	fn->options[fn->n_options].value = kv + klen + 1;
	fn->n_options++;
	return 1;
}

static void
append(char *buf, size_t len, const char *s)
{
	size_t used = strlen(buf);

	if (used < len)
		(void)snprintf(buf + used, len - used, "%s", s);
}

static int
handle(void *data, const char *section, const char *name, const char *value)
{
	struct parse *p = data;
	char list[256] = "";
	unsigned int k;

	(void)section;
	if (p->error)
		return 0;
	if (p->section == SEC_NONE)
		return fail(p, p->line,
		    "%s: key outside any section, put it under [tandem], [vip], [fence] or "
		    "[replication]",
		    name);
	if (*name == '\0')
		return fail(
		    p, p->line, "[%s]: no key before '=', write 'key = value'", p->section_name);
	if (p->section == SEC_FENCE_NODE)
		return set_fence_option(p, name, value);

	for (k = 0; k < K_COUNT; k++) {
		if (keys[k].section != p->section || strcmp(keys[k].name, name) != 0)
			continue;
		if (p->key_line[k])
			return key_fail(p, (enum key_id)k, "set twice (first on line %u), keep one",
			    p->key_line[k]);
		p->key_line[k] = p->line;
		return set_key(p, (enum key_id)k, value);
	}
	for (k = 0; k < K_COUNT; k++) {
		if (keys[k].section != p->section)
			continue;
		append(list, sizeof(list), *list ? ", " : "");
		append(list, sizeof(list), keys[k].name);
	}
	return fail(p, p->line, "[%s] %s: unknown key, use one of %s", p->section_name, name, list);
}

/* Checks that span keys, once the whole file is read. */
static void
check_config(struct parse *p)
{
	const struct config *c = p->c;
	char a[32], b[32];

	if (!c->vip_address)
		(void)fail(p, 0,
		    "[vip] address is missing, set the virtual IP address "
		    "(such as 'address = 192.0.2.50/24')");
	else if (!c->vip_interface)
		(void)fail(p, 0,
		    "[vip] interface is missing, set the interface that carries the "
		    "virtual IP address (such as 'interface = eth0')");
	else if (!p->key_line[K_AGENT])
		(void)fail(p, 0,
		    "[fence] agent is missing, set a fence agent (such as "
		    "'agent = fence_ipmilan') or 'agent = none' explicitly");
	else if ((uint64_t)c->heartbeat_timeout_ms <= 2 * (uint64_t)c->heartbeat_interval_ms) {
		duration_text(c->heartbeat_timeout_ms, a, sizeof(a));
		duration_text(c->heartbeat_interval_ms, b, sizeof(b));
		if (p->key_line[K_HEARTBEAT_TIMEOUT])
			(void)fail(p, p->key_line[K_HEARTBEAT_TIMEOUT],
			    "[tandem] heartbeat_timeout: %s must be more than twice "
			    "heartbeat_interval "
			    "(%s), raise it or lower heartbeat_interval",
			    a, b);
		else
			(void)fail(p, p->key_line[K_HEARTBEAT_INTERVAL],
			    "[tandem] heartbeat_interval: %s is too long for heartbeat_timeout %s "
			    "(the default), which must be more than twice it; lower it or set "
			    "heartbeat_timeout",
			    b, a);
	}
}

/* --- load, free, print ---------------------------------------------------- */

int
config_load(const char *path, struct config *ret, char *err, size_t errlen)
{
	struct config c = {
	    .log_level = LOG_INFO,
	    .heartbeat_interval_ms = 100,
	    .heartbeat_timeout_ms = 1000,
	    .startup_grace_ms = 10000,
	    .announce_count = 5,
	    .announce_interval_ms = 1000,
	    .vip_lifetime_s = 30,
	    .fence_timeout_ms = 60000,
	    .fence_retries = 2,
	    .fence_retry_interval_ms = 5000,
	    .fence_delay_ms = 5000,
	    .repl_port = 7405,
	    .repl_timeout_ms = 10000,
	    .repl_backlog_mib = 64,
	    .repl_snapshot_wal_mib = 1024,
	};
	struct parse p = {.path = path, .c = &c};
	int r;

	if (err && errlen)
		err[0] = '\0';
	p.file = fopen(path, "re");
	if (!p.file) {
		r = -errno;
		(void)fail(&p, 0, "cannot open: %s", strerror(-r));
		p.error = r;
		goto out;
	}
	c.state_dir = strdup("/var/lib/tandem");
	c.repl_ca = strdup("/etc/tandem/tls/ca.crt");
	c.repl_cert = strdup("/etc/tandem/tls/node.crt");
	c.repl_key = strdup("/etc/tandem/tls/node.key");
	if (!c.state_dir || !c.repl_ca || !c.repl_cert || !c.repl_key) {
		(void)fail_nomem(&p);
		goto out;
	}
	r = ini_parse_stream(read_line, &p, handle, &p);
	if (r == -2)
		(void)fail_nomem(&p);
	else if (r > 0)
		/* Only when check_line let through what libinih refused. */
		(void)fail(&p, (unsigned int)r, "syntax error, write 'key = value' or [section]");
	if (!p.error)
		check_config(&p);

out:
	if (p.file)
		(void)fclose(p.file);
	if (p.error) {
		if (err && errlen)
			(void)snprintf(err, errlen, "%s", p.msg);
		config_free(&c);
		return p.error;
	}
	*ret = c;
	return 0;
}

void
config_free(struct config *c)
{
	unsigned int i, j;

	if (!c)
		return;
	free(c->state_dir);
	free(c->primary);
	free(c->vip_address);
	free(c->vip_interface);
	free(c->fence_agent);
	free(c->repl_listen);
	free(c->repl_ca);
	free(c->repl_cert);
	free(c->repl_key);
	for (i = 0; i < c->n_fence_nodes; i++) {
		free(c->fence_nodes[i].node);
		for (j = 0; j < c->fence_nodes[i].n_options; j++)
			free((void *)c->fence_nodes[i].options[j].key);
	}
	memset(c, 0, sizeof(*c));
}

/*
 * libinih reads a value that starts with ';' after a blank as a comment;
 * without the blank it is a value.
 */
static void
print_string(FILE *f, const char *key, const char *value)
{
	fprintf(f, value[0] == ';' ? "%s =%s\n" : "%s = %s\n", key, value);
}

static void
print_duration(FILE *f, const char *key, uint64_t ms)
{
	char buf[32];

	fprintf(f, "%s = %s\n", key, duration_text(ms, buf, sizeof(buf)));
}

void
config_print(const struct config *c, FILE *f)
{
	unsigned int i, j;

	fprintf(f, "[tandem]\n");
	print_string(f, "state_dir", c->state_dir);
	fprintf(f, "log_level = %s\n", config_log_level_name(c->log_level));
	if (c->primary)
		print_string(f, "primary", c->primary);
	print_duration(f, "heartbeat_interval", c->heartbeat_interval_ms);
	print_duration(f, "heartbeat_timeout", c->heartbeat_timeout_ms);
	print_duration(f, "startup_grace", c->startup_grace_ms);

	fprintf(f, "\n[vip]\n");
	print_string(f, "address", c->vip_address);
	print_string(f, "interface", c->vip_interface);
	fprintf(f, "announce_count = %u\n", c->announce_count);
	print_duration(f, "announce_interval", c->announce_interval_ms);
	print_duration(f, "lifetime", (uint64_t)c->vip_lifetime_s * 1000);

	fprintf(f, "\n[fence]\n");
	print_string(f, "agent", c->fence_agent ? c->fence_agent : "none");
	print_duration(f, "timeout", c->fence_timeout_ms);
	fprintf(f, "retries = %u\n", c->fence_retries);
	print_duration(f, "retry_interval", c->fence_retry_interval_ms);
	print_duration(f, "delay", c->fence_delay_ms);

	fprintf(f, "\n[replication]\n");
	fprintf(f, "mode = %s\n", c->repl_async ? "async" : "sync");
	fprintf(f, "port = %u\n", c->repl_port);
	if (c->repl_listen)
		print_string(f, "listen", c->repl_listen);
	print_string(f, "ca", c->repl_ca);
	print_string(f, "cert", c->repl_cert);
	print_string(f, "key", c->repl_key);
	print_duration(f, "timeout", c->repl_timeout_ms);
	fprintf(f, "backlog = %u\n", c->repl_backlog_mib);
	fprintf(f, "snapshot_wal = %u\n", c->repl_snapshot_wal_mib);

	for (i = 0; i < c->n_fence_nodes; i++) {
		fprintf(f, "\n[fence:%s]\n", c->fence_nodes[i].node);
		for (j = 0; j < c->fence_nodes[i].n_options; j++)
			print_string(f, c->fence_nodes[i].options[j].key,
			    c->fence_nodes[i].options[j].value);
	}
}
