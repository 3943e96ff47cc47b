/* Where the default guest image lives: $IRONCLAW_IMAGE_DIR, else an `image`
 * folder beside the ironclaw binary or one level up (build/image for both
 * build/ironclaw and build/cov/ironclaw), else /usr/local/share/ironclaw/image. */
#ifndef IRONCLAW_VM_IMAGE_H
#define IRONCLAW_VM_IMAGE_H

#include <stddef.h>

#include "core/err.h"

struct vm_image {
	char kernel[4200];   /* room for a PATH_MAX folder plus the file name */
	char initrd[4200];
};

/* Fills paths to an existing kernel and initramfs, or fails with a hint to run
 * `make image`. */
int vm_image_find(struct vm_image *img, struct err *e);

#endif
