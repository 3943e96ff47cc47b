/* placeholder filled below */
#include "cli/commands.h"
int cmd_sandbox(int argc, char **argv) { (void)argc; (void)argv; return 2; }
