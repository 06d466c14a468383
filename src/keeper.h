/* The keeper: one thread per pool that extends the leases of running tasks
 * and enforces their deadlines. It shares the pool's lock, condition
 * variable and in-flight list; the pool owns all three. */
#ifndef OMNIQ_KEEPER_H
#define OMNIQ_KEEPER_H

#include "job.h"

/* How often (ms) the keeper looks at the store's clock while some run has a
 * deadline: the clock may jump (an injectable clock) without telling it. */
#define OMNIQ__KEEPER_TICK_MS 50

typedef struct omniq__keeper {
  omniq_t *oq;
  pthread_mutex_t *lock;       /* guards *inflight, stop, the jobs' bookkeeping */
  pthread_cond_t *cond;        /* monotonic; broadcast when a run starts or stop is set */
  omniq_job_t *const *inflight; /* head of the in-flight list */
  int64_t extend_ms;           /* lease/3 */
  int stop;                    /* set under *lock to end omniq__keeper_run */
} omniq__keeper_t;

/* The keeper's loop; returns once stop is set. Run it on its own thread. */
void omniq__keeper_run(omniq__keeper_t *k);

#endif
