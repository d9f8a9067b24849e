/* Seed 001's flag loops, in C: a child waits for `ready` in shared memory, set by its parent 5 ms
 * after the child starts waiting. argv[1]: "busy" for `while (shared->ready == 0) { }`, "usleep"
 * for `while (shared->ready == 0) usleep(1000);`, "volatile" for the busy loop on a volatile int.
 * Prints whether the child left its loop within 500 ms. Build it at -O0, -O1, -O2 (and with
 * clang, where installed) to see what the compiler does with each: tests/seeds/side_by_side.sh. */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

typedef struct { int ready; volatile int vready; } shared_t;

static void nap_ms(long ms) {
    struct timespec t = {0, ms * 1000000L};
    nanosleep(&t, NULL);
}
int main(int argc, char **argv) {
    const char *how = argc > 1 ? argv[1] : "busy";
    shared_t *shared = mmap(NULL, sizeof *shared, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (shared == MAP_FAILED) { perror("mmap"); return 1; }
    pid_t pid = fork();
    if (pid == 0) {
        if (strcmp(how, "usleep") == 0) while (shared->ready == 0) usleep(1000);
        else if (strcmp(how, "volatile") == 0) while (shared->vready == 0) { }
        else while (shared->ready == 0) { }
        _exit(0);
    }
    nap_ms(5);
    shared->ready = 1;
    shared->vready = 1;
    for (int i = 0; i < 100; i++) {
        nap_ms(5);
        if (waitpid(pid, NULL, WNOHANG) == pid) { printf("%-8s the child left its loop\n", how); return 0; }
    }
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    printf("%-8s the child was still in its loop after 500 ms (ready = %d in memory): killed\n", how, shared->ready);
    return 0;
}
