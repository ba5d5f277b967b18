/*
 * What this machine gives two threads that share nothing: each thread runs
 * the same dependent chain of integer arithmetic on its own registers.
 * Prints ops_per_s over all threads; the ratio between the 2- and the
 * 1-thread figure is the most any 2-thread workload can scale here. No
 * libssl involved: it is the yardstick for the 2-thread lookup figures.
 *
 *   bench_scale THREADS [ITERATIONS per thread]
 */
#include "bench.h"

#include <pthread.h>

static long iterations;

static void *spin(void *arg)
{
    uint64_t h = (uint64_t)(uintptr_t)arg + 1;

    for (long i = 0; i < iterations; i++)
        h = bench_mix(h);
    *(volatile uint64_t *)arg = h; /* keep the result */
    return NULL;
}

int main(int argc, char **argv)
{
    long threads = bench_arg_long(argc, argv, 1, 1);
    pthread_t tid[8];
    uint64_t seeds[8][8]; /* one cache line per thread */
    double t0, elapsed;

    iterations = bench_arg_long(argc, argv, 2, 100000000);
    if (threads < 1 || threads > 8 || iterations < 1) {
        fprintf(stderr, "usage: %s THREADS(1-8) [ITERATIONS]\n", argv[0]);
        return 2;
    }
    t0 = bench_now_ns();
    for (long k = 0; k < threads; k++) {
        seeds[k][0] = (uint64_t)k;
        BENCH_CHECK(pthread_create(&tid[k], NULL, spin, seeds[k]) == 0);
    }
    for (long k = 0; k < threads; k++)
        BENCH_CHECK(pthread_join(tid[k], NULL) == 0);
    elapsed = bench_now_ns() - t0;
    printf("ops_per_s=%.0f\n", (double)threads * (double)iterations / elapsed * 1e9);
    return 0;
}
