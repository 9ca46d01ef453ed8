/*
 * test-config: tandem.conf against the real config.c.
 *
 * Every file is written under one mkdtemp folder, removed at the end.  The
 * good files are the one tools/tandem-lab writes and a minimal one that
 * leaves everything else to the defaults; every bad file is the minimal one
 * with one line changed, and its test checks the whole contract of an
 * error: -EINVAL, "tandem.conf:LINE:" first, the key named, the reason
 * given, and *ret not touched.  Printing is checked by loading what was
 * printed and comparing field by field.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include "config.h"

/* cmocka.h needs setjmp.h, stdarg.h and stddef.h before it. */
#include <cmocka.h>

static char dir[PATH_MAX];
static char conf[PATH_MAX + 32];
static char printed[PATH_MAX + 32];

static void
write_text(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	assert_int_equal(fputs(text, f) >= 0, 1);
	assert_int_equal(fclose(f), 0);
}

static void
load_ok(const char *text, struct config *c)
{
	char err[512];
	int r;

	write_text(conf, text);
	r = config_load(conf, c, err, sizeof(err));
	if (r != 0)
		print_error("unexpected error: %s\n", err);
	assert_int_equal(r, 0);
}

/* The file tools/tandem-lab writes (write_tandem_conf), fence on. */
static const char lab_conf[] = "[tandem]\n"
                               "state_dir = /var/lib/tandem\n"
                               "log_level = info\n"
                               "primary = n1\n"
                               "heartbeat_interval = 100ms\n"
                               "heartbeat_timeout = 600ms\n"
                               "\n"
                               "[vip]\n"
                               "address = 192.0.2.50/24\n"
                               "interface = eth0\n"
                               "announce_count = 5\n"
                               "announce_interval = 100ms\n"
                               "lifetime = 6s\n"
                               "\n"
                               "[fence]\n"
                               "agent = /work/main/tools/fence_tandemlab\n"
                               "timeout = 10s\n"
                               "retries = 1\n"
                               "delay = 50ms\n"
                               "\n"
                               "[fence:n1]\n"
                               "lab_dir = /tmp/tandem-lab\n"
                               "fail = yes\n"
                               "\n"
                               "[fence:n2]\n"
                               "lab_dir = /tmp/tandem-lab\n"
                               "fail = yes\n";

static const char minimal_conf[] = "[vip]\n"
                                   "address = 192.0.2.50/24\n"
                                   "interface = eth0\n"
                                   "[fence]\n"
                                   "agent = none\n";

static void
test_lab(void **state)
{
	const struct config_fence_node *n;
	struct config c;

	load_ok(lab_conf, &c);
	assert_string_equal(c.state_dir, "/var/lib/tandem");
	assert_int_equal(c.log_level, LOG_INFO);
	assert_string_equal(c.primary, "n1");
	assert_int_equal(c.heartbeat_interval_ms, 100);
	assert_int_equal(c.heartbeat_timeout_ms, 600);
	assert_int_equal(c.startup_grace_ms, 10000);
	assert_string_equal(c.vip_address, "192.0.2.50/24");
	assert_string_equal(c.vip_interface, "eth0");
	assert_int_equal(c.announce_count, 5);
	assert_int_equal(c.announce_interval_ms, 100);
	assert_int_equal(c.vip_lifetime_s, 6);
	assert_string_equal(c.fence_agent, "/work/main/tools/fence_tandemlab");
	assert_int_equal(c.fence_timeout_ms, 10000);
	assert_int_equal(c.fence_retries, 1);
	assert_int_equal(c.fence_retry_interval_ms, 5000);
	assert_int_equal(c.fence_delay_ms, 50);
	assert_int_equal(c.n_fence_nodes, 2);
	n = config_fence_node(&c, "n2");
	assert_non_null(n);
	assert_string_equal(n->node, "n2");
	assert_int_equal(n->n_options, 2);
	assert_string_equal(n->options[0].key, "lab_dir");
	assert_string_equal(n->options[0].value, "/tmp/tandem-lab");
	assert_string_equal(n->options[1].key, "fail");
	assert_string_equal(n->options[1].value, "yes");
	assert_ptr_equal(config_fence_node(&c, "n1"), &c.fence_nodes[0]);
	assert_null(config_fence_node(&c, "n3"));
	assert_null(config_fence_node(NULL, "n1"));
	config_free(&c);
	assert_null(c.state_dir);
	config_free(&c);
	config_free(NULL);
}

static void
test_defaults(void **state)
{
	struct config c;
	char *text = NULL;
	size_t len = 0;
	FILE *f;

	load_ok(minimal_conf, &c);
	assert_string_equal(c.state_dir, "/var/lib/tandem");
	assert_int_equal(c.log_level, LOG_INFO);
	assert_null(c.primary);
	assert_int_equal(c.heartbeat_interval_ms, 100);
	assert_int_equal(c.heartbeat_timeout_ms, 1000);
	assert_int_equal(c.startup_grace_ms, 10000);
	assert_int_equal(c.announce_count, 5);
	assert_int_equal(c.announce_interval_ms, 1000);
	assert_int_equal(c.vip_lifetime_s, 30);
	assert_null(c.fence_agent);
	assert_int_equal(c.fence_timeout_ms, 60000);
	assert_int_equal(c.fence_retries, 2);
	assert_int_equal(c.fence_retry_interval_ms, 5000);
	assert_int_equal(c.fence_delay_ms, 5000);
	assert_int_equal(c.n_fence_nodes, 0);

	/* No primary is printed as no line at all. */
	f = open_memstream(&text, &len);
	assert_non_null(f);
	config_print(&c, f);
	assert_int_equal(fclose(f), 0);
	assert_null(strstr(text, "primary"));
	assert_non_null(strstr(text, "agent = none\n"));
	free(text);
	config_free(&c);
}

/* What libinih allows and we keep: comments, blanks, indents, CRLF, a BOM, "key: value". */
static void
test_syntax_accepted(void **state)
{
	struct config c;

	load_ok("\xef\xbb\xbf# tandem.conf\r\n"
	        "; another comment\r\n"
	        "  [tandem]   ; inline comment\r\n"
	        "\tlog_level = trace ; inline comment\r\n"
	        "    startup_grace: 0s\r\n"
	        "   \r\n"
	        "[vip]\r\n"
	        "  address = 2001:db8::50/64\r\n"
	        "  interface = eth0\r\n"
	        "[fence]\r\n"
	        "agent = fence_ipmilan\r\n"
	        "delay = 0ms\r\n"
	        "[fence:node-2.example]\r\n"
	        "password = se;cret#1\r\n"
	        "empty =\r\n"
	        "[fence:n1]\r\n",
	    &c);
	assert_int_equal(c.log_level, LOG_DEBUG + 1);
	assert_int_equal(c.startup_grace_ms, 0);
	assert_string_equal(c.vip_address, "2001:db8::50/64");
	assert_string_equal(c.fence_agent, "fence_ipmilan");
	assert_int_equal(c.fence_delay_ms, 0);
	assert_int_equal(c.n_fence_nodes, 2);
	assert_string_equal(c.fence_nodes[0].node, "node-2.example");
	assert_int_equal(c.fence_nodes[0].n_options, 2);
	assert_string_equal(c.fence_nodes[0].options[0].value, "se;cret#1");
	assert_string_equal(c.fence_nodes[0].options[1].value, "");
	assert_string_equal(c.fence_nodes[1].node, "n1");
	assert_int_equal(c.fence_nodes[1].n_options, 0);
	config_free(&c);
}

static void
test_duration(void **state)
{
	static const struct {
		const char *text;
		unsigned int ms;
	} good[] = {
	    {"100ms", 100},
	    {"6s", 6000},
	    {"2m", 120000},
	    {"0s", 0},
	    {"007s", 7000},
	    {"4294967295ms", 4294967295u},
	    {"4294967s", 4294967000u},
	    {"71582m", 4294920000u},
	};
	static const char *const bad[] = {"100", "-5s", "+5s", " 5s", "5 s", "5sec", "5h", "", "s",
	    "1.5s", "0x10s", "4294967296ms", "4294968s", "71583m", "99999999999999999999999999ms",
	    "5S", "5ms ", NULL};
	unsigned int ms;
	size_t i;

	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		ms = 1;
		assert_int_equal(config_parse_duration(good[i].text, &ms), 0);
		assert_int_equal(ms, good[i].ms);
	}
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ms = 12345;
		if (config_parse_duration(bad[i], &ms) != -EINVAL)
			fail_msg("'%s' was taken as a duration", bad[i] ? bad[i] : "(null)");
		assert_int_equal(ms, 12345);
	}
}

static void
test_log_level(void **state)
{
	static const char *const names[] = {"err", "warning", "notice", "info", "debug", "trace"};
	static const int levels[] = {
	    LOG_ERR, LOG_WARNING, LOG_NOTICE, LOG_INFO, LOG_DEBUG, LOG_DEBUG + 1};
	int level;
	size_t i;

	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		assert_int_equal(config_parse_log_level(names[i], &level), 0);
		assert_int_equal(level, levels[i]);
		assert_string_equal(config_log_level_name(level), names[i]);
	}
	level = 99;
	assert_int_equal(config_parse_log_level("error", &level), -EINVAL);
	assert_int_equal(config_parse_log_level("INFO", &level), -EINVAL);
	assert_int_equal(config_parse_log_level("", &level), -EINVAL);
	assert_int_equal(config_parse_log_level(NULL, &level), -EINVAL);
	assert_int_equal(level, 99);
	assert_string_equal(config_log_level_name(LOG_CRIT), "unknown");
}

/*
 * A bad file: the minimal one, with these lines put in.  Its line numbers:
 * 1 [tandem], 2 tandem, 3 [vip], 4 vip_head (two lines by default), 6 vip,
 * 7 [fence], 8 agent, 9 fence, 10 tail.  whole replaces all of it.
 */
struct bad {
	const char *tandem, *vip_head, *vip, *agent, *fence, *tail, *whole;
	/* Where the error is (0: none in the message), and what it must say. */
	unsigned int line;
	const char *want[3];
};

static const struct bad bad_cases[] = {
    /* [tandem] */
    {.tandem = "state_dir = var/lib/tandem",
        .line = 2,
        .want = {"[tandem] state_dir: ", "'var/lib/tandem'", "absolute"}},
    {.tandem = "state_dir =", .line = 2, .want = {"[tandem] state_dir: ", "no value"}},
    {.tandem = "state_dir = /a\nstate_dir = /b",
        .line = 3,
        .want = {"[tandem] state_dir: ", "twice (first on line 2)", "keep one"}},
    {.tandem = "log_level = loud",
        .line = 2,
        .want = {"[tandem] log_level: ", "'loud'", "err, warning, notice, info, debug or trace"}},
    {.tandem = "log_level = error", .line = 2, .want = {"[tandem] log_level: ", "'error'"}},
    {.tandem = "primary = n 1", .line = 2, .want = {"[tandem] primary: ", "'n 1'", "letters"}},
    {.tandem = "primary = n123456789012345678901234567890123456789012345",
        .line = 2,
        .want = {"[tandem] primary: ", "too long"}},
    {.tandem = "heartbeat_interval = 100",
        .line = 2,
        .want = {"[tandem] heartbeat_interval: ", "'100' has no unit", "100s"}},
    {.tandem = "heartbeat_interval = -100ms",
        .line = 2,
        .want = {"[tandem] heartbeat_interval: ", "'-100ms' is negative"}},
    {.tandem = "heartbeat_interval = 0ms",
        .line = 2,
        .want = {"[tandem] heartbeat_interval: ", "more than zero"}},
    {.tandem = "heartbeat_interval = 99999999999999999999999ms",
        .line = 2,
        .want = {"[tandem] heartbeat_interval: ", "too large", "at most 71582m"}},
    {.tandem = "heartbeat_interval = 5000000m",
        .line = 2,
        .want = {"[tandem] heartbeat_interval: ", "too large"}},
    {.tandem = "heartbeat_interval = fast",
        .line = 2,
        .want = {"[tandem] heartbeat_interval: ", "'fast' is not a duration", "ms, s or m"}},
    {.tandem = "heartbeat_timeout = 200ms",
        .line = 2,
        .want = {"[tandem] heartbeat_timeout: ", "200ms must be more than twice",
            "heartbeat_interval (100ms)"}},
    {.tandem = "heartbeat_timeout = 0s",
        .line = 2,
        .want = {"[tandem] heartbeat_timeout: ", "more than zero"}},
    {.tandem = "heartbeat_interval = 500ms",
        .line = 2,
        .want = {"[tandem] heartbeat_interval: ", "500ms is too long for heartbeat_timeout 1s",
            "twice"}},
    {.tandem = "startup_grace = 10", .line = 2, .want = {"[tandem] startup_grace: ", "no unit"}},
    {.tandem = "heartbeat = 1s",
        .line = 2,
        .want = {"[tandem] heartbeat: unknown key", "state_dir, log_level, primary",
            "startup_grace"}},
    {.tandem = "State_Dir = /x", .line = 2, .want = {"[tandem] State_Dir: unknown key"}},
    {.tandem = "= /x", .line = 2, .want = {"[tandem]: no key before '='"}},
    /* [vip] */
    {.vip_head = "address = 192.0.2.500/24\ninterface = eth0",
        .line = 4,
        .want = {"[vip] address: ", "'192.0.2.500/24' is not an IPv4 or IPv6 address"}},
    {.vip_head = "address = vip.example\ninterface = eth0",
        .line = 4,
        .want = {"[vip] address: ", "'vip.example'"}},
    {.vip_head = "address = /24\ninterface = eth0",
        .line = 4,
        .want = {"[vip] address: ", "not an IPv4"}},
    {.vip_head = "address = fe80::1%eth0\ninterface = eth0",
        .line = 4,
        .want = {"[vip] address: ", "not an IPv4"}},
    {.vip_head = "address = 2001:db8::50:123456/64\ninterface = eth0",
        .line = 4,
        .want = {"[vip] address: ", "not an IPv4"}},
    {.vip_head = "address = 192.0.2.50/33\ninterface = eth0",
        .line = 4,
        .want = {"[vip] address: ", "prefix length", "/1 to /32"}},
    {.vip_head = "address = 192.0.2.50/0\ninterface = eth0",
        .line = 4,
        .want = {"[vip] address: ", "prefix length"}},
    {.vip_head = "address = 192.0.2.50/\ninterface = eth0",
        .line = 4,
        .want = {"[vip] address: ", "prefix length"}},
    {.vip_head = "address = 192.0.2.50/24x\ninterface = eth0",
        .line = 4,
        .want = {"[vip] address: ", "prefix length"}},
    {.vip_head = "address = 192.0.2.50/-24\ninterface = eth0",
        .line = 4,
        .want = {"[vip] address: ", "prefix length"}},
    {.vip_head = "address = 2001:db8::50/129\ninterface = eth0",
        .line = 4,
        .want = {"[vip] address: ", "prefix length", "/1 to /128"}},
    {.vip_head = "address = 192.0.2.50/24\ninterface = abcdefghijklmnop",
        .line = 5,
        .want = {"[vip] interface: ", "'abcdefghijklmnop' is too long", "15"}},
    {.vip_head = "address = 192.0.2.50/24\ninterface = eth/0",
        .line = 5,
        .want = {"[vip] interface: ", "'eth/0'"}},
    {.vip_head = "address = 192.0.2.50/24\ninterface = ..",
        .line = 5,
        .want = {"[vip] interface: ", "'..'"}},
    {.vip_head = "interface = eth0\n",
        .line = 0,
        .want = {"[vip] address is missing", "address = 192.0.2.50/24"}},
    {.vip_head = "address = 192.0.2.50/24\n",
        .line = 0,
        .want = {"[vip] interface is missing", "interface = eth0"}},
    {.vip_head = "address = 192.0.2.50/24\naddress = 192.0.2.51/24",
        .line = 5,
        .want = {"[vip] address: ", "twice"}},
    {.vip = "announce_count = 0",
        .line = 6,
        .want = {"[vip] announce_count: ", "'0' is too small", "1 to 100"}},
    {.vip = "announce_count = 101",
        .line = 6,
        .want = {"[vip] announce_count: ", "'101' is too large"}},
    {.vip = "announce_count = 99999999999999999999999",
        .line = 6,
        .want = {"[vip] announce_count: ", "too large"}},
    {.vip = "announce_count = -1",
        .line = 6,
        .want = {"[vip] announce_count: ", "'-1' is negative"}},
    {.vip = "announce_count = five",
        .line = 6,
        .want = {"[vip] announce_count: ", "'five' is not a whole number"}},
    {.vip = "announce_count = 5x",
        .line = 6,
        .want = {"[vip] announce_count: ", "'5x' is not a whole number"}},
    {.vip = "announce_interval = 0s",
        .line = 6,
        .want = {"[vip] announce_interval: ", "more than zero"}},
    {.vip = "lifetime = 2s",
        .line = 6,
        .want = {"[vip] lifetime: ", "'2s' is too short, use at least 3s"}},
    {.vip = "lifetime = 3500ms",
        .line = 6,
        .want = {"[vip] lifetime: ", "not whole seconds", "4s"}},
    {.vip = "lifetime = 30", .line = 6, .want = {"[vip] lifetime: ", "no unit"}},
    {.vip = "vip = 192.0.2.50",
        .line = 6,
        .want = {"[vip] vip: unknown key", "address, interface, announce_count"}},
    /* [fence] */
    {.agent = "agent =", .line = 8, .want = {"[fence] agent: ", "is empty", "'agent = none'"}},
    {.agent = "",
        .line = 0,
        .want = {"[fence] agent is missing", "set a fence agent", "'agent = none' explicitly"}},
    {.whole = "[vip]\naddress = 192.0.2.50\ninterface = eth0\n",
        .line = 0,
        .want = {"[fence] agent is missing"}},
    {.fence = "agent = fence_ipmilan",
        .line = 9,
        .want = {"[fence] agent: ", "twice (first on line 8)"}},
    {.fence = "timeout = 0s", .line = 9, .want = {"[fence] timeout: ", "more than zero"}},
    {.fence = "timeout = 1h", .line = 9, .want = {"[fence] timeout: ", "'1h' is not a duration"}},
    {.fence = "retries = 101", .line = 9, .want = {"[fence] retries: ", "0 to 100"}},
    {.fence = "retries = x", .line = 9, .want = {"[fence] retries: ", "'x'"}},
    {.fence = "retry_interval = 0ms",
        .line = 9,
        .want = {"[fence] retry_interval: ", "more than zero"}},
    {.fence = "delay = -1s", .line = 9, .want = {"[fence] delay: ", "negative"}},
    {.fence = "delay = 1.5s", .line = 9, .want = {"[fence] delay: ", "'1.5s'"}},
    {.fence = "fencing = yes",
        .line = 9,
        .want = {"[fence] fencing: unknown key", "agent, timeout, retries"}},
    /* sections and syntax */
    {.tail = "[bogus]", .line = 10, .want = {"[bogus]: unknown section", "[fence:NODE]"}},
    {.tail = "[ vip ]", .line = 10, .want = {"[ vip ]: unknown section"}},
    {.tail = "[]", .line = 10, .want = {"[]: unknown section"}},
    {.tail = "[vip]", .line = 10, .want = {"[vip]: section appears twice (first on line 3)"}},
    {.tail = "[fence:]", .line = 10, .want = {"[fence:]: node name '' is empty"}},
    {.tail = "[fence:n/1]", .line = 10, .want = {"[fence:n/1]: node name 'n/1'", "letters"}},
    {.tail = "[fence:n1234567890123456789012345678901234567890123]",
        .line = 10,
        .want = {"section name is too long"}},
    {.tail = "[fence:n1]\n[fence:n1]", .line = 11, .want = {"[fence:n1]: section appears twice"}},
    {.tail = "[fence:n1]\naction = off",
        .line = 11,
        .want = {"[fence:n1] action: ", "tandemd sets this option"}},
    {.tail = "[fence:n1]\nnodename = n1",
        .line = 11,
        .want = {"[fence:n1] nodename: ", "tandemd sets this option"}},
    {.tail = "[fence:n1]\nip = 192.0.2.1\nip = 192.0.2.2",
        .line = 12,
        .want = {"[fence:n1] ip: set twice"}},
    {.tail = "[fence:n1]\nbad.key = 1",
        .line = 11,
        .want = {"[fence:n1] bad.key: ", "not a fence agent option name"}},
    {.tail = "[tandem", .line = 10, .want = {"'[tandem'", "no closing ']'"}},
    {.tail = "[tandem ;]", .line = 10, .want = {"no closing ']'"}},
    {.tail = "[fence:n1] junk", .line = 10, .want = {"'[fence:n1] junk'", "text after"}},
    {.tail = "just words", .line = 10, .want = {"'just words' is not 'key = value'"}},
    {.tail = "#xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
             "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
             "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
        .line = 10,
        .want = {"line is longer than 198 characters"}},
    {.whole = "log_level = info\n[tandem]\n",
        .line = 1,
        .want = {"log_level: key outside any section", "[tandem]"}},
    {.whole = "", .line = 0, .want = {"[vip] address is missing"}},
    {.whole = "[fence:n1]\n[fence:n2]\n[fence:n3]\n[fence:n4]\n[fence:n5]\n[fence:n6]\n"
              "[fence:n7]\n[fence:n8]\n[fence:n9]\n",
        .line = 9,
        .want = {"[fence:n9]: too many [fence:NODE] sections", "at most 8"}},
};

static void
build_bad(const struct bad *b, char *buf, size_t len)
{
	if (b->whole) {
		(void)snprintf(buf, len, "%s", b->whole);
		return;
	}
	(void)snprintf(buf, len, "[tandem]\n%s\n[vip]\n%s\n%s\n[fence]\n%s\n%s\n%s\n",
	    b->tandem ? b->tandem : "",
	    b->vip_head ? b->vip_head : "address = 192.0.2.50/24\ninterface = eth0",
	    b->vip ? b->vip : "", b->agent ? b->agent : "agent = none", b->fence ? b->fence : "",
	    b->tail ? b->tail : "");
}

/* Loads text, which must fail with -EINVAL and an error at line that says want. */
static void
check_bad(
    const char *what, const char *text, unsigned int line, const char *const *want, size_t n_want)
{
	struct config c, before;
	char err[512], prefix[PATH_MAX + 64];
	size_t i;
	int r;

	write_text(conf, text);
	memset(&c, 0x5a, sizeof(c));
	memcpy(&before, &c, sizeof(c));
	r = config_load(conf, &c, err, sizeof(err));
	if (line)
		(void)snprintf(prefix, sizeof(prefix), "%s:%u: ", conf, line);
	else
		(void)snprintf(prefix, sizeof(prefix), "%s: ", conf);
	if (r != -EINVAL || strncmp(err, prefix, strlen(prefix)) != 0)
		fail_msg("%s: returned %d, error '%s', wanted -EINVAL and '%s...'", what, r, err,
		    prefix);
	for (i = 0; i < n_want && want[i]; i++)
		if (!strstr(err, want[i]))
			fail_msg("%s: error '%s' does not say '%s'", what, err, want[i]);
	if (strchr(err, '\n'))
		fail_msg("%s: error '%s' is more than one line", what, err);
	assert_memory_equal(&c, &before, sizeof(c));
}

static void
test_bad(void **state)
{
	char text[4096];
	size_t i;

	for (i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++) {
		const struct bad *b = &bad_cases[i];
		char what[64];

		build_bad(b, text, sizeof(text));
		(void)snprintf(what, sizeof(what), "bad case %zu", i);
		check_bad(what, text, b->line, b->want, 3);
	}
}

static void
test_too_many_options(void **state)
{
	static const char *const want[] = {"[fence:n1] o32: too many options", "at most 32"};
	char text[4096];
	size_t used;
	int i;

	used = (size_t)snprintf(text, sizeof(text), "%s[fence:n1]\n", minimal_conf);
	for (i = 0; i <= CONFIG_MAX_FENCE_OPTIONS; i++)
		used += (size_t)snprintf(text + used, sizeof(text) - used, "o%d = %d\n", i, i);
	assert_true(used < sizeof(text));
	/* minimal_conf has 5 lines, then the header: o32 is on line 6 + 33. */
	check_bad("33 options", text, 39, want, 2);
}

static void
test_unreadable(void **state)
{
	char missing[PATH_MAX + 32], err[512];
	struct config c, before;

	memset(&c, 0x5a, sizeof(c));
	memcpy(&before, &c, sizeof(c));
	(void)snprintf(missing, sizeof(missing), "%s/missing.conf", dir);
	assert_int_equal(config_load(missing, &c, err, sizeof(err)), -ENOENT);
	assert_non_null(strstr(err, missing));
	assert_non_null(strstr(err, "cannot open"));

	/* A folder opens but does not read. */
	assert_int_equal(config_load(dir, &c, err, sizeof(err)), -EISDIR);
	assert_non_null(strstr(err, dir));
	assert_non_null(strstr(err, "cannot read"));
	assert_memory_equal(&c, &before, sizeof(c));

	/* No room for the error is allowed. */
	assert_int_equal(config_load(missing, &c, NULL, 0), -ENOENT);
	err[0] = 'x';
	assert_int_equal(config_load(missing, &c, err, 1), -ENOENT);
	assert_int_equal(err[0], '\0');
}

static void
assert_config_equal(const struct config *a, const struct config *b)
{
	unsigned int i, j;

	assert_string_equal(a->state_dir, b->state_dir);
	assert_int_equal(a->log_level, b->log_level);
	if (a->primary || b->primary)
		assert_string_equal(
		    a->primary ? a->primary : "(null)", b->primary ? b->primary : "(null)");
	assert_int_equal(a->heartbeat_interval_ms, b->heartbeat_interval_ms);
	assert_int_equal(a->heartbeat_timeout_ms, b->heartbeat_timeout_ms);
	assert_int_equal(a->startup_grace_ms, b->startup_grace_ms);
	assert_string_equal(a->vip_address, b->vip_address);
	assert_string_equal(a->vip_interface, b->vip_interface);
	assert_int_equal(a->announce_count, b->announce_count);
	assert_int_equal(a->announce_interval_ms, b->announce_interval_ms);
	assert_int_equal(a->vip_lifetime_s, b->vip_lifetime_s);
	if (a->fence_agent || b->fence_agent)
		assert_string_equal(a->fence_agent ? a->fence_agent : "(null)",
		    b->fence_agent ? b->fence_agent : "(null)");
	assert_int_equal(a->fence_timeout_ms, b->fence_timeout_ms);
	assert_int_equal(a->fence_retries, b->fence_retries);
	assert_int_equal(a->fence_retry_interval_ms, b->fence_retry_interval_ms);
	assert_int_equal(a->fence_delay_ms, b->fence_delay_ms);
	assert_int_equal(a->repl_async, b->repl_async);
	assert_int_equal(a->repl_port, b->repl_port);
	if (a->repl_listen || b->repl_listen)
		assert_string_equal(a->repl_listen ? a->repl_listen : "(null)",
		    b->repl_listen ? b->repl_listen : "(null)");
	assert_string_equal(a->repl_ca, b->repl_ca);
	assert_string_equal(a->repl_cert, b->repl_cert);
	assert_string_equal(a->repl_key, b->repl_key);
	assert_int_equal(a->repl_timeout_ms, b->repl_timeout_ms);
	assert_int_equal(a->repl_backlog_mib, b->repl_backlog_mib);
	assert_int_equal(a->repl_snapshot_wal_mib, b->repl_snapshot_wal_mib);
	assert_int_equal(a->n_fence_nodes, b->n_fence_nodes);
	for (i = 0; i < a->n_fence_nodes; i++) {
		assert_string_equal(a->fence_nodes[i].node, b->fence_nodes[i].node);
		assert_int_equal(a->fence_nodes[i].n_options, b->fence_nodes[i].n_options);
		for (j = 0; j < a->fence_nodes[i].n_options; j++) {
			assert_string_equal(
			    a->fence_nodes[i].options[j].key, b->fence_nodes[i].options[j].key);
			assert_string_equal(
			    a->fence_nodes[i].options[j].value, b->fence_nodes[i].options[j].value);
		}
	}
}

static char *
read_text(const char *path)
{
	static char buf[8192];
	FILE *f = fopen(path, "r");
	size_t n;

	assert_non_null(f);
	n = fread(buf, 1, sizeof(buf) - 1, f);
	assert_int_equal(fclose(f), 0);
	buf[n] = '\0';
	return buf;
}

/* Prints text's config, loads the print, and checks both ways that nothing changed. */
static void
check_round_trip(const char *text, const char *const *want_lines)
{
	struct config a, b;
	char err[512], *first;
	FILE *f;

	load_ok(text, &a);
	f = fopen(printed, "w");
	assert_non_null(f);
	config_print(&a, f);
	assert_int_equal(fclose(f), 0);
	first = strdup(read_text(printed));
	assert_non_null(first);
	for (; want_lines && *want_lines; want_lines++)
		if (!strstr(first, *want_lines))
			fail_msg("printed config lacks '%s':\n%s", *want_lines, first);

	if (config_load(printed, &b, err, sizeof(err)) != 0)
		fail_msg("printed config does not load: %s\n%s", err, first);
	assert_config_equal(&a, &b);
	f = fopen(printed, "w");
	assert_non_null(f);
	config_print(&b, f);
	assert_int_equal(fclose(f), 0);
	assert_string_equal(read_text(printed), first);
	free(first);
	config_free(&a);
	config_free(&b);
}

static void
test_print(void **state)
{
	static const char *const lab_lines[] = {
	    "[tandem]\nstate_dir = /var/lib/tandem\n"
	    "log_level = info\nprimary = n1\n"
	    "heartbeat_interval = 100ms\nheartbeat_timeout = 600ms\n"
	    "startup_grace = 10s\n\n[vip]\n",
	    "lifetime = 6s\n", "retry_interval = 5s\ndelay = 50ms\n\n[replication]\nmode = sync\n",
	    "backlog = 64\nsnapshot_wal = 1024\n\n[fence:n1]\n", NULL};
	static const char *const minimal_lines[] = {
	    "agent = none\n", "lifetime = 30s\n", "timeout = 1m\n", NULL};
	static const char *const units_lines[] = {"log_level = trace\n",
	    "heartbeat_interval = 1500ms\n", "heartbeat_timeout = 90s\n", "startup_grace = 0s\n",
	    "announce_interval = 2m\n", "lifetime = 2m\n", "password =;odd\n", "ip = 2001:db8::1\n",
	    "[fence:b]\n\n[fence:a]\nx = 1\n",
	    "mode = async\nport = 17405\nlisten = 2001:db8::11\n", "ca = /etc/t/ca.crt\n",
	    "timeout = 1500ms\nbacklog = 4096\nsnapshot_wal = 1048576\n", NULL};

	check_round_trip(lab_conf, lab_lines);
	check_round_trip(minimal_conf, minimal_lines);
	check_round_trip(
	    "[tandem]\nlog_level = trace\nheartbeat_interval = 1500ms\n"
	    "heartbeat_timeout = 90000ms\nstartup_grace = 0m\n"
	    "[vip]\naddress = 2001:db8::50/64\ninterface = eth0\n"
	    "announce_interval = 120s\nlifetime = 120s\n"
	    "[fence]\nagent = fence_ipmilan\n"
	    "[replication]\nmode = async\nport = 17405\nlisten = 2001:db8::11\n"
	    "ca = /etc/t/ca.crt\ntimeout = 1500ms\nbacklog = 4096\nsnapshot_wal = 1048576\n"
	    "[fence:c]\npassword =;odd\nip = 2001:db8::1\n[fence:b]\n[fence:a]\nx = 1\n",
	    units_lines);
}

static int
setup(void **state)
{
	(void)snprintf(dir, sizeof(dir), "%s/test-config.XXXXXX",
	    getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	if (!mkdtemp(dir))
		return -1;
	(void)snprintf(conf, sizeof(conf), "%s/tandem.conf", dir);
	(void)snprintf(printed, sizeof(printed), "%s/printed.conf", dir);
	return 0;
}

static int
teardown(void **state)
{
	(void)unlink(conf);
	(void)unlink(printed);
	return rmdir(dir);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_lab),
	    cmocka_unit_test(test_defaults),
	    cmocka_unit_test(test_syntax_accepted),
	    cmocka_unit_test(test_duration),
	    cmocka_unit_test(test_log_level),
	    cmocka_unit_test(test_bad),
	    cmocka_unit_test(test_too_many_options),
	    cmocka_unit_test(test_unreadable),
	    cmocka_unit_test(test_print),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
