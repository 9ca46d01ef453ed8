/*
 * config-print: loads a tandem.conf and prints it back as config_print
 * does, for the golden suite.  Exit 0 with the canonical file on stdout,
 * 1 with the one-line error on stderr, 2 on bad usage.
 */
#include <stdio.h>

#include "config.h"

int
main(int argc, char **argv)
{
	struct config c;
	char err[1024];

	if (argc != 2) {
		fprintf(stderr, "usage: config-print FILE\n");
		return 2;
	}
	if (config_load(argv[1], &c, err, sizeof(err)) < 0) {
		fprintf(stderr, "%s\n", err);
		return 1;
	}
	config_print(&c, stdout);
	config_free(&c);
	return fflush(stdout) == 0 && !ferror(stdout) ? 0 : 1;
}
