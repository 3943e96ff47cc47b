/* mkdir -p over a caller's path buffer: see dirs.h. */
#include "core/dirs.h"

#include <errno.h>
#include <sys/stat.h>

int dirs_make_prefixes(char *path, unsigned mode)
{
	if (!path[0])
		return 0;
	for (char *s = path + 1; *s; s++) {
		if (*s != '/')
			continue;
		*s = '\0';
		if (mkdir(path, (mode_t)mode) < 0 && errno != EEXIST)
			return -errno;
		*s = '/';
	}
	return 0;
}
