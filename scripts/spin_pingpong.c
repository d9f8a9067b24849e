/* The C reference for the appendix's "shm + spin" round trip (ipc-bench latency): two processes
 * pinned to two CPUs ping-pong a sequence number through a MAP_SHARED anonymous mapping, each
 * spinning (acquire loads, the CPU's pause hint) until the other's release store changes its word.
 *
 *   spin_pingpong [ROUND_TRIPS [LAYOUT [CPU_A CPU_B]]]
 *
 * LAYOUT: "one-line" (both words in one 64-byte cache line, the classic ping-pong; default) or
 * "two-lines" (each word on a line of its own, 64 bytes apart: a line per direction).
 * Prints three figures, each from ROUND_TRIPS round trips after 10 untimed: the median of the round
 * trips timed one by one (clock_gettime before the send and after the reply); the median of them
 * timed 16 at a time (the time of 16 in a row, divided by 16), as ipc-bench times them; and the
 * mean of all of them timed as one batch. CPU_A and CPU_B default to 0 and 1. Used by
 * scripts/spin-vs-c.sh; not one of the book's programs. */
#define _GNU_SOURCE
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <signal.h>
#include <unistd.h>

#define WARMUP 10
#define BATCH 16 /* ipc-bench's SPIN_BATCH */

static void pin(int cpu) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    if (sched_setaffinity(0, sizeof set, &set) != 0) {
        perror("sched_setaffinity");
        exit(1);
    }
}

static uint64_t now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

/* The CPU's spin-wait hint, as Rust's std::hint::spin_loop gives it. */
static inline void spin_hint(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ volatile("isb" ::: "memory");
#endif
}

/* Spins until *word differs from `seen`; returns the new value. */
static uint32_t spin_while(uint32_t *word, uint32_t seen) {
    uint32_t now;
    while ((now = __atomic_load_n(word, __ATOMIC_ACQUIRE)) == seen)
        spin_hint();
    return now;
}

static int cmp(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    long trips = argc > 1 ? atol(argv[1]) : 500;
    const char *layout = argc > 2 ? argv[2] : "one-line";
    int cpu_a = argc > 3 ? atoi(argv[3]) : 0, cpu_b = argc > 4 ? atoi(argv[4]) : 1;
    size_t apart;
    if (strcmp(layout, "one-line") == 0)
        apart = sizeof(uint32_t);
    else if (strcmp(layout, "two-lines") == 0)
        apart = 64;
    else {
        fprintf(stderr, "spin_pingpong: layout `%s`: one-line or two-lines\n", layout);
        return 2;
    }
    if (trips < 1) {
        fprintf(stderr, "spin_pingpong: round trips `%s`: a positive number\n", argv[1]);
        return 2;
    }
    char *map = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (map == MAP_FAILED) {
        perror("mmap");
        return 1;
    }
    uint32_t *to_child = (uint32_t *)map, *to_parent = (uint32_t *)(map + apart);
    if (trips > 10000000) {
        fprintf(stderr, "spin_pingpong: round trips `%s`: at most 10000000\n", argv[1]);
        return 2;
    }
    /* Timed one by one, then 16 at a time, then as one batch. */
    uint32_t total = WARMUP + (2 + BATCH) * (uint32_t)trips;
    pin(cpu_a);
    pid_t pid = fork();
    if (pid < 0) {
        perror("fork");
        return 1;
    }
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        pin(cpu_b);
        for (uint32_t n = 1; n <= total; n++) {
            uint32_t got = spin_while(to_child, n - 1);
            if (got != n) {
                fprintf(stderr, "child: expected %u, got %u\n", n, got);
                _exit(1);
            }
            __atomic_store_n(to_parent, n, __ATOMIC_RELEASE);
        }
        _exit(0);
    }
    uint64_t *times = malloc(trips * sizeof *times), *batches = malloc(trips * sizeof *batches);
    if (!times || !batches) {
        perror("malloc");
        return 1;
    }
    uint32_t n = 1;
    for (; n <= WARMUP; n++) {
        __atomic_store_n(to_child, n, __ATOMIC_RELEASE);
        spin_while(to_parent, n - 1);
    }
    for (long i = 0; i < trips; i++, n++) {
        uint64_t start = now_ns();
        __atomic_store_n(to_child, n, __ATOMIC_RELEASE);
        uint32_t got = spin_while(to_parent, n - 1);
        times[i] = now_ns() - start;
        if (got != n) {
            fprintf(stderr, "parent: sent %u, got back %u\n", n, got);
            return 1;
        }
    }
    for (long i = 0; i < trips; i++) {
        uint64_t start = now_ns();
        for (int j = 0; j < BATCH; j++, n++) {
            __atomic_store_n(to_child, n, __ATOMIC_RELEASE);
            spin_while(to_parent, n - 1);
        }
        batches[i] = now_ns() - start;
    }
    uint64_t batch_start = now_ns();
    for (long i = 0; i < trips; i++, n++) {
        __atomic_store_n(to_child, n, __ATOMIC_RELEASE);
        spin_while(to_parent, n - 1);
    }
    double batch = (double)(now_ns() - batch_start) / (double)trips;
    int status;
    if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "spin_pingpong: the child failed\n");
        return 1;
    }
    qsort(times, trips, sizeof *times, cmp);
    qsort(batches, trips, sizeof *batches, cmp);
    /* The median as ipc-bench takes it: the nearest rank, (trips + 1) / 2. */
    printf("C spin, %s, CPUs %d and %d: one by one %llu ns, %d at a time %.0f ns, "
           "one batch %.0f ns\n",
           layout, cpu_a, cpu_b, (unsigned long long)times[(trips - 1) / 2], BATCH,
           (double)batches[(trips - 1) / 2] / BATCH, batch);
    return 0;
}
