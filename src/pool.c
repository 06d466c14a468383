/* Placeholder until the worker pool lands: no workers can be started yet. */
#include "pool.h"

void omniq__pool_close_all(omniq_t *oq) { (void)oq; }
