/*
 * What this machine gives two threads that share nothing. Prints ops_per_s
 * over all threads; the ratio between the 2- and the 1-thread figure is the
 * most a 2-thread workload of that kind can scale here. No libssl involved:
 * these are the yardsticks for the 2-thread lookup figures.
 *
 *   chain  each thread runs one dependent chain of integer arithmetic on
 *          its own registers: one instruction at a time, so two threads
 *          scale even when the VM's two CPUs share one physical core.
 *   wide   each thread hashes and reads its own 256 KiB table, with many
 *          instructions in flight, as a cache lookup does (about 4 per
 *          cycle): two threads scale only when they do not share a core.
 *          Seen here: 1.6x-2.0x between runs minutes apart.
 *   dram   each thread follows chains of three dependent reads through its
 *          own 256 MiB table (far beyond the 32 MiB L3), chains independent
 *          of each other, as a lookup in a cache of 1M sessions does (hash
 *          table, entry, session): two threads scale only as far as the
 *          memory system and the page walks serve both. The tables are
 *          filled before the clock starts.
 *
 *   bench_scale THREADS [ITERATIONS per thread] [chain|wide|dram]
 */
#include "bench.h"

#include <pthread.h>

static long iterations;
static int wide, dram;
static pthread_barrier_t filled;

static void *spin(void *arg)
{
    uint64_t h = (uint64_t)(uintptr_t)arg + 1;

    if (dram) {
        const uint64_t slots = (256u << 20) / sizeof(uint64_t);
        uint64_t *table = malloc(slots * sizeof *table);

        BENCH_CHECK(table != NULL);
        for (uint64_t i = 0; i < slots; i++)
            table[i] = bench_mix(i ^ h);
        pthread_barrier_wait(&filled);
        for (long i = 0; i < iterations; i++) {
            uint64_t k = table[bench_mix((uint64_t)i ^ h) % slots];
            k = table[k % slots];
            h += table[k % slots];
        }
        free(table);
        *(volatile uint64_t *)arg = h;
        return NULL;
    }
    if (wide) {
        enum { SLOTS = 32768 };
        uint64_t *table = malloc(SLOTS * sizeof *table);

        BENCH_CHECK(table != NULL);
        for (long i = 0; i < SLOTS; i++)
            table[i] = bench_mix((uint64_t)i);
        for (long i = 0; i < iterations; i++) {
            uint64_t k = bench_mix((uint64_t)i);
            uint64_t a = table[k & (SLOTS - 1)], b = table[(k >> 20) & (SLOTS - 1)];
            h += (a ^ b) * (k | 1);
            if ((a & 7) == 3)
                h ^= b;
        }
        free(table);
    } else {
        for (long i = 0; i < iterations; i++)
            h = bench_mix(h);
    }
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
    wide = argc > 3 && strcmp(argv[3], "wide") == 0;
    dram = argc > 3 && strcmp(argv[3], "dram") == 0;
    if (threads < 1 || threads > 8 || iterations < 1 ||
        (argc > 3 && !wide && !dram && strcmp(argv[3], "chain") != 0)) {
        fprintf(stderr, "usage: %s THREADS(1-8) [ITERATIONS] [chain|wide|dram]\n", argv[0]);
        return 2;
    }
    /* dram: the clock starts when every thread has filled its table */
    BENCH_CHECK(pthread_barrier_init(&filled, NULL, (unsigned)threads + 1) == 0);
    t0 = bench_now_ns();
    for (long k = 0; k < threads; k++) {
        seeds[k][0] = (uint64_t)k;
        BENCH_CHECK(pthread_create(&tid[k], NULL, spin, seeds[k]) == 0);
    }
    if (dram) {
        pthread_barrier_wait(&filled);
        t0 = bench_now_ns();
    }
    for (long k = 0; k < threads; k++)
        BENCH_CHECK(pthread_join(tid[k], NULL) == 0);
    elapsed = bench_now_ns() - t0;
    printf("ops_per_s=%.0f\n", (double)threads * (double)iterations / elapsed * 1e9);
    return 0;
}
