/* SPDX-License-Identifier: MIT */
/* Does a pool of four drain SQLite as fast as a pool of one? A measure of
 * the ratio that the machine's noise cannot flip.
 *
 * One timed drain per pool size moves by ±30% on a shared machine, more
 * than any difference between the sizes. So this benchmark runs many short
 * rounds instead; each round runs both sizes, each on a fresh store
 * (pool_drain.h: TASKS no-op tasks enqueued with omniq_enqueue_many, then
 * drained by omniq_worker_process), back to back, in ABBA order (c=1 then
 * c=4, then c=4 then c=1, ...) so that a drift in the machine's load hits
 * both sizes alike. A round's figures are a ratio c=4 / c=1 of
 *
 *   end2end  tasks per second, enqueue and drain (what the throughput
 *            target names),
 *   drain    tasks per second of the drain alone (the pool's part: the
 *            enqueue is the same work at either size),
 *   cpu      CPU (user + system, getrusage of the process) per task of
 *            the drain,
 *
 * and what summarises ROUNDS of them is the median ratio, with a
 * distribution-free 95% interval for that median: the order statistics
 * x(k) and x(n+1-k) of the sorted ratios, k the largest for which the
 * binomial(n, 1/2) leaves at most 2.5% below k on each side. It assumes
 * nothing of the noise's shape (it is nothing like normal here: a run
 * caught behind another person's build is slower by half), only that
 * rounds are independent.
 *
 * The verdict (docs/benchmarks.md says why): c=4 is not slower than c=1
 * when the median end2end ratio is at least 0.97 and the interval's upper
 * end at least 1.00; it is slower when the upper end is below 1.00 (the
 * figure then says by how much, and the drain and cpu ratios and the
 * voluntary context switches say where).
 *
 * bench_pool_scaling [TASKS [ROUNDS [THREADS]]]: TASKS per drain (a
 * multiple of 500, default 20,000), ROUNDS (default 100), the larger pool
 * (default 4). */
#include <stdio.h>
#include <stdlib.h>

#include "pool_drain.h"

#define LEASE_MS 30000
#define MAX_ROUNDS 1000

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

/* P(X <= k) for X ~ binomial(n, 1/2). */
static double binom_half_cdf(int n, int k) {
  double p = 0, term = 1; /* C(n, i) / 2^n, built up in doubles: n <= 1000 */
  for (int i = 0; i < n; i++) term /= 2;
  for (int i = 0; i <= k; i++) {
    p += term;
    term = term * (n - i) / (i + 1);
  }
  return p;
}

typedef struct summary {
  double median, lo, hi, coverage;
} summary_t;

/* The median of x[0..n) and its distribution-free 95% interval (sorts x).
 * With too few rounds for any interval at 95%, the widest one there is
 * (the extremes) and its coverage. */
static summary_t summarise(double *x, int n) {
  summary_t s;
  qsort(x, (size_t)n, sizeof *x, cmp_double);
  s.median = n % 2 ? x[n / 2] : (x[n / 2 - 1] + x[n / 2]) / 2;
  int k = 1; /* 1-based: [x(k), x(n+1-k)] covers the median with 1 - 2 P(X <= k-1) */
  while (k + 1 <= n / 2 && 2 * binom_half_cdf(n, k) <= 0.05) k++;
  s.lo = x[k - 1];
  s.hi = x[n - k];
  s.coverage = 1 - 2 * binom_half_cdf(n, k - 1);
  return s;
}

static double rate(long n, int64_t ns) { return ns > 0 ? (double)n * 1e9 / (double)ns : 0; }

int main(int argc, char **argv) {
  long tasks = argc > 1 ? atol(argv[1]) : 20000;
  int rounds = argc > 2 ? atoi(argv[2]) : 100;
  int big = argc > 3 ? atoi(argv[3]) : 4;
  if (tasks < POOL_DRAIN_BATCH || tasks % POOL_DRAIN_BATCH != 0 || rounds < 2 ||
      rounds > MAX_ROUNDS || big < 2 || big > 64)
    die("usage", "bench_pool_scaling [TASKS (a multiple of 500) [ROUNDS (2-1000) [THREADS (2-64)]]]");
  static double r_e2e[MAX_ROUNDS], r_drain[MAX_ROUNDS], r_cpu[MAX_ROUNDS], r_vcsw[MAX_ROUNDS];
  printf("Pool scaling on SQLite: c=%d against c=1, %d rounds of %ld no-op tasks each"
         " (enqueue_many, then a drain), fresh stores, ABBA order\n"
         "per round: end-to-end and drain tasks/s, CPU us per task of the drain, voluntary"
         " context switches of the drain, for each size; then the ratios c=%d / c=1\n",
         big, rounds, tasks, big);
  printf("%5s %5s | %9s %9s %7s %7s | %9s %9s %7s %7s | %7s %7s %7s %7s\n", "round", "order",
         "e2e c1", "drain c1", "cpu c1", "vcsw c1", "e2e cN", "drain cN", "cpu cN", "vcsw cN",
         "e2e", "drain", "cpu", "vcsw");
  fflush(stdout);
  for (int i = 0; i < rounds; i++) {
    pool_drain_t one, many;
    int one_first = i % 2 == 0; /* ABBA across rounds: 1,N  N,1  1,N ... */
    if (one_first) {
      pool_drain_run(1, tasks, LEASE_MS, &one);
      pool_drain_run(big, tasks, LEASE_MS, &many);
    } else {
      pool_drain_run(big, tasks, LEASE_MS, &many);
      pool_drain_run(1, tasks, LEASE_MS, &one);
    }
    double e1 = rate(tasks, one.enqueue_ns + one.process_ns);
    double en = rate(tasks, many.enqueue_ns + many.process_ns);
    double d1 = rate(tasks, one.process_ns), dn = rate(tasks, many.process_ns);
    double c1 = (double)(one.cpu_ns - one.enq_cpu_ns) / 1e3 / (double)tasks;
    double cn = (double)(many.cpu_ns - many.enq_cpu_ns) / 1e3 / (double)tasks;
    r_e2e[i] = en / e1;
    r_drain[i] = dn / d1;
    r_cpu[i] = cn / c1;
    r_vcsw[i] = (double)(many.process_vcsw + 1) / (double)(one.process_vcsw + 1);
    printf("%5d %5s | %9.0f %9.0f %7.2f %7ld | %9.0f %9.0f %7.2f %7ld | %7.3f %7.3f %7.3f %7.2f\n",
           i + 1, one_first ? "1,N" : "N,1", e1, d1, c1, one.process_vcsw, en, dn, cn,
           many.process_vcsw, r_e2e[i], r_drain[i], r_cpu[i], r_vcsw[i]);
    fflush(stdout);
  }
  summary_t se = summarise(r_e2e, rounds), sd = summarise(r_drain, rounds);
  summary_t sc = summarise(r_cpu, rounds), sv = summarise(r_vcsw, rounds);
  printf("median ratio c=%d / c=1 [distribution-free interval, coverage %.1f%%]:\n", big,
         se.coverage * 100);
  printf("  end2end tasks/s %.3f [%.3f, %.3f]\n", se.median, se.lo, se.hi);
  printf("  drain tasks/s   %.3f [%.3f, %.3f]\n", sd.median, sd.lo, sd.hi);
  printf("  cpu per task    %.3f [%.3f, %.3f]\n", sc.median, sc.lo, sc.hi);
  printf("  vcsw per drain  %.2f [%.2f, %.2f]\n", sv.median, sv.lo, sv.hi);
  if (se.hi < 1.0)
    printf("verdict: c=%d SLOWER than c=1 end to end, by %.1f%% (median; at least %.1f%%)\n", big,
           (1 - se.median) * 100, (1 - se.hi) * 100);
  else if (se.median >= 0.97)
    printf("verdict: c=%d not slower than c=1 end to end (median >= 0.97, upper end >= 1.00)\n",
           big);
  else
    printf("verdict: undecided: the median %.3f is below 0.97 but the interval reaches 1.00;"
           " run more rounds\n",
           se.median);
  return 0;
}
