/* SPDX-License-Identifier: MIT */
/* ringtail.c - the command-line tool: dispatch to one command. */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "ringtail.h"

static const char usage[] =
	"usage: ringtail COMMAND [ARGS...]\n"
	"\n"
	"Write records:\n"
	"  log [-t SERVICE] [-p LEVEL] [--trace HEX32] [--span HEX16] [-a KEY=VALUE]... [MESSAGE...]\n"
	"                      write one record, or one per line of standard input\n"
	"  wrap -t SERVICE [--tee] -- COMMAND [ARGS...]\n"
	"                      run COMMAND, recording stdout as INFO and stderr as ERROR\n"
	"\n"
	"Look at the ring:\n"
	"  stat [--json]       occupancy, records written, drops per writer, losses\n"
	"  ring create [--size BYTES] [--chunk-size BYTES] [--slots N] [--group GROUP]\n"
	"              [--mode OCTAL] [--reserve PCT] [--writer-share PCT]\n"
	"  ring remove         mark the ring dead (writers move on) and unlink it\n"
	"\n"
	"Look at the spool:\n"
	"  dump [--from SEQ] SEGMENT|SPOOL...   print records as lines\n"
	"  verify [SPOOL]      check every segment; exit 1 on any damage\n"
	"\n"
	"Measure:\n"
	"  bench writer [--threads N] [--size BYTES] [--records N] [--rounds N] [--json]\n"
	"  bench spool [--size BYTES | --corpus DIR] [--seconds N] [--json]\n"
	"  bench fs [--corpus DIR] [--size BYTES] [--runs N] [--json]\n"
	"  bench forward [--size BYTES | --corpus DIR] [--records N] [--senders N] [--runs N] [--json]\n"
	"\n"
	"Every command that uses a ring takes --ring PATH; the default is $" RT_RING_ENV "\n"
	"or " RT_RING_DEFAULT_PATH ". The default spool is $RINGTAIL_SPOOL, else\n"
	"/var/lib/ringtail for root and ~/.local/state/ringtail for others.\n";

int main(int argc, char **argv)
{
	static const struct {
		const char *name;
		int (*fn)(int, char **);
	} cmds[] = {
		{"log", cmd_log},   {"wrap", cmd_wrap},   {"stat", cmd_stat},
		{"ring", cmd_ring}, {"bench", cmd_bench}, {"dump", cmd_dump},
		{"verify", cmd_verify},
	};
	size_t i;

	if (argc < 2) {
		fputs(usage, stderr);
		return 2;
	}
	if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "help")) {
		fputs(usage, stdout);
		return 0;
	}
	if (!strcmp(argv[1], "--version") || !strcmp(argv[1], "version")) {
		printf("ringtail %s\n", RINGTAIL_VERSION_STRING);
		return 0;
	}
	for (i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
		if (!strcmp(argv[1], cmds[i].name))
			return cmds[i].fn(argc - 1, argv + 1);
	cli_err("unknown command '%s' (try 'ringtail --help')", argv[1]);
	return 2;
}
