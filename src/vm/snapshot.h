/* What the host tells a VM restored from a saved state so that it is not a
 * copy of every other clone (vm.identity, answered by src/guest/identity.c):
 * fresh entropy from the host's getrandom, the host's wall clock, and its own
 * hostname and VM id. vm.c sends it before a restored VM becomes ready. */
#ifndef IRONCLAW_VM_SNAPSHOT_H
#define IRONCLAW_VM_SNAPSHOT_H

#include <jansson.h>

#include "core/err.h"

/* Bytes of host entropy each clone gets (credited in full by the guest). */
#define VM_IDENTITY_ENTROPY 64

/* The vm.identity params for a clone named vm_id (also its hostname): owned,
 * or NULL with e set. The time is read last, just before sending. */
json_t *vm_snapshot_identity_params(const char *vm_id, struct err *e);
/* Checks the guest's reply: it must confirm every byte of entropy. */
int vm_snapshot_identity_check(json_t *result, struct err *e);

#endif
