/* What template_build.c needs of template.c beyond template.h. */
#ifndef IRONCLAW_VM_TEMPLATE_INTERNAL_H
#define IRONCLAW_VM_TEMPLATE_INTERNAL_H

#include "vm/template.h"

/* Hashes dir/state and writes dir/manifest.json for t (t->key, shape, save_ms). */
int vm_template_write_manifest(const struct vm_template *t, const char *dir, struct err *e);
/* Removes a template or build directory (files only inside). */
int vm_template_remove_dir(const char *dir, struct err *e);
/* Creates every missing directory of path (mode 0700). */
int vm_template_mkdirs(const char *path, struct err *e);

#endif
