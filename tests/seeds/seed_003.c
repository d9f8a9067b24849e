/* Seed 003's first fork example, in C with the seed's shape and timing: a shared mapping made
 * before fork, the parent writes "Ala ma kota" at t = 4 s, the child prints the table at t = 2 s
 * and t = 6 s (NAP_TIME = 2). Only the timing is synchronization. NAP_MS in the environment
 * scales NAP_TIME (default 2000 ms). Run by tests/seeds/side_by_side.sh. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void nap(long ms) {
    struct timespec t = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&t, NULL);
}
static void print_table(const char *t, size_t n) {
    printf("Process %d, table: ", getpid());
    for (size_t i = 0; i < n; i++) printf("%c%s", t[i] ? t[i] : ' ', i + 1 < n ? "|" : "\n");
    fflush(stdout);
}
int main(void) {
    const char BUFF[] = "Ala ma kota";
    const size_t n = sizeof BUFF - 1;
    long nap_ms = getenv("NAP_MS") ? atol(getenv("NAP_MS")) : 2000;
    char *mem = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (mem == MAP_FAILED) { perror("mmap"); return 1; }
    nap(nap_ms);
    pid_t pid = fork();
    if (pid == 0) {
        nap(nap_ms);
        print_table(mem, n);
        nap(2 * nap_ms);
        print_table(mem, n);
        return 0;
    }
    printf("Parent PID: %d, Child PID: %d\n", getpid(), pid);
    nap(2 * nap_ms);
    memcpy(mem, BUFF, n);
    printf("Process %d, modified shared memory content\n", getpid());
    fflush(stdout);
    wait(NULL);
    return 0;
}
