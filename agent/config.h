/*
 * config: tandem.conf, parsed and validated before anything starts.
 *
 * The file is INI (libinih).  Sections: [tandem], [vip], [fence],
 * [replication] and one [fence:NODE] per node with the options given to the fence agent for
 * that node.  Durations take a unit (ms, s, m); sizes and counts are plain
 * integers.  Every error is one line naming the file, the line, the key
 * and what is wrong with the value, and the daemon does not start.
 *
 * The node list, names and addresses are never here: they come from
 * corosync's nodelist (cluster.c).
 */
#ifndef TANDEM_CONFIG_H
#define TANDEM_CONFIG_H

#include <stdbool.h>
#include <stdio.h>

#include "fence/fence.h"

#define CONFIG_DEFAULT_PATH "/etc/tandem/tandem.conf"
#define CONFIG_MAX_FENCE_NODES 8
#define CONFIG_MAX_FENCE_OPTIONS 32

struct config_fence_node {
	/* The node's name as in corosync's nodelist ("n1"). */
	char *node;
	struct fence_option options[CONFIG_MAX_FENCE_OPTIONS];
	unsigned int n_options;
};

struct config {
	/* [tandem] */
	char *state_dir;                    /* default /var/lib/tandem */
	int log_level;                      /* syslog priority, default LOG_INFO */
	char *primary;                      /* node name of the primary identity; NULL: none */
	unsigned int heartbeat_interval_ms; /* default 100 */
	unsigned int heartbeat_timeout_ms;  /* default 1000; > 2 * interval */
	unsigned int
	    startup_grace_ms; /* default 10000: wait for a peer tandemd whose corosync runs */

	/* [vip] (address required) */
	char *vip_address;                 /* "192.0.2.50/24" or "2001:db8::50/64" */
	char *vip_interface;               /* required */
	unsigned int announce_count;       /* default 5 */
	unsigned int announce_interval_ms; /* default 1000 */
	unsigned int vip_lifetime_s;       /* default 30, >= 3 */

	/* [fence] (agent required: a path or name, or "none") */
	char *fence_agent;                    /* NULL when agent = none */
	unsigned int fence_timeout_ms;        /* default 60000 */
	unsigned int fence_retries;           /* default 2: attempts after the first in one run */
	unsigned int fence_retry_interval_ms; /* default 5000: also between failed runs */
	unsigned int fence_delay_ms; /* default 5000: the standby's delay in a possible split */
	struct config_fence_node fence_nodes[CONFIG_MAX_FENCE_NODES];
	unsigned int n_fence_nodes;

	/* [replication] */
	bool repl_async;                    /* mode = async; default sync */
	unsigned int repl_port;             /* default 7405 */
	char *repl_listen;                  /* numeric address; NULL: this node's ring0_addr */
	char *repl_ca;                      /* default /etc/tandem/tls/ca.crt */
	char *repl_cert;                    /* default /etc/tandem/tls/node.crt */
	char *repl_key;                     /* default /etc/tandem/tls/node.key */
	unsigned int repl_timeout_ms;       /* default 10s, >= 1s */
	unsigned int repl_backlog_mib;      /* default 64, 1..4096 */
	unsigned int repl_snapshot_wal_mib; /* default 1024, 1..1048576 */
};

/*
 * Reads and validates path into *ret (defaults for what is missing).  On
 * failure returns -EINVAL (or -errno when the file cannot be read), writes
 * one line without newline into err ("tandem.conf:12: [vip] lifetime:
 * '2s' is too short, use at least 3s") and leaves *ret untouched.
 * Free with config_free.
 */
int config_load(const char *path, struct config *ret, char *err, size_t errlen);

/* Frees what config_load allocated; config_free(NULL) is a no-op. */
void config_free(struct config *c);

/*
 * Prints c back as a complete, canonical tandem.conf (every key, with
 * defaults filled in, sections in a fixed order, durations with units),
 * so that loading the output gives the same config.  Used by tandemd -t.
 */
void config_print(const struct config *c, FILE *f);

/* The options for node's fence agent, or NULL when there is no [fence:node]. */
const struct config_fence_node *config_fence_node(const struct config *c, const char *node);

/* Parses "100ms", "5s", "2m" into milliseconds.  Returns 0 or -EINVAL. */
int config_parse_duration(const char *text, unsigned int *ret_ms);

/* Parses a log level name (err, warning, notice, info, debug, trace) into a syslog priority. */
int config_parse_log_level(const char *text, int *ret_level);

/* The name of a syslog priority as config_parse_log_level reads it. */
const char *config_log_level_name(int level);

#endif
