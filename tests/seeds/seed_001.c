/* Seed 001's numbers pipeline, in the seed's shape: a fixed name unlinked first, O_CREAT|O_EXCL
 * 0644, a plain int flag with usleep(1000) polling on both sides, fgets unchecked, the child
 * fork+execl'd, opening the object by name, summing each line into a file. Only instrumentation
 * is added (marked MEASURE): the parent stamps each line with CLOCK_MONOTONIC, the child times the
 * hand-off when its look sees the 1, counts its looks, and prints what it measured, as the Rust
 * port does. Used by tests/seeds/side_by_side.sh; not part of the book's programs. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define SHM_SIZE 4096
typedef struct {
    int data_ready;
    long published_ns; /* MEASURE */
    char data[SHM_SIZE - 16];
} shared_data_t;

static long now_ns(void) { /* MEASURE */
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1000000000L + t.tv_nsec;
}
static int cmp(const void *a, const void *b) {
    long x = *(const long *)a, y = *(const long *)b;
    return (x > y) - (x < y);
}

static int child(const char *name, const char *out) {
    int shm_fd = shm_open(name, O_RDWR, 0644);
    if (shm_fd == -1) { perror("Child: shm_open failed"); return 1; }
    shared_data_t *shared_data = mmap(NULL, SHM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, shm_fd, 0);
    if (shared_data == MAP_FAILED) { perror("Child: mmap failed"); return 1; }
    FILE *f = fopen(out, "w");
    long waits[100000]; int lines = 0; long looks = 0, vain = 0;   /* MEASURE */
    long t0 = now_ns();
    while (1) {
        while (shared_data->data_ready == 0) { looks++; vain++; usleep(1000); }
        looks++;
        if (shared_data->data_ready == 2) break;
        if (lines < 100000) waits[lines] = now_ns() - shared_data->published_ns; /* MEASURE */
        lines++;
        char local_buffer[1024];
        strncpy(local_buffer, shared_data->data, sizeof(local_buffer) - 1);
        local_buffer[sizeof(local_buffer) - 1] = '\0';
        shared_data->data_ready = 0;
        long sum = 0; char *p = local_buffer, *end;
        for (long v = strtol(p, &end, 10); end != p; v = strtol(p, &end, 10)) { sum += v; p = end; }
        fprintf(f, "sum %ld\n", sum);
    }
    fclose(f);
    long ran = now_ns() - t0;
    struct rusage u; getrusage(RUSAGE_SELF, &u);
    long cpu = (u.ru_utime.tv_sec + u.ru_stime.tv_sec) * 1000000000L + (u.ru_utime.tv_usec + u.ru_stime.tv_usec) * 1000L;
    int n = lines < 100000 ? lines : 100000;
    qsort(waits, n, sizeof waits[0], cmp);
    printf("C child: %d lines; hand-off median %.0f us, longest %.0f us; %ld%% of %ld looks vain; CPU %.0f us in %.1f ms\n",
           lines, n ? waits[n / 2] / 1e3 : 0, n ? waits[n - 1] / 1e3 : 0, looks ? vain * 100 / looks : 0, looks,
           cpu / 1e3, ran / 1e6);
    munmap(shared_data, SHM_SIZE);
    close(shm_fd);
    return 0;
}

int main(int argc, char **argv) {
    const char *name = getenv("SEED_SHM_NAME") ? getenv("SEED_SHM_NAME") : "/numbers_shm";
    if (argc == 3 && strcmp(argv[1], "child") == 0) return child(name, argv[2]);
    const char *out = argc > 1 ? argv[1] : "/dev/null";
    shm_unlink(name);
    int shm_fd = shm_open(name, O_RDWR | O_CREAT | O_EXCL, 0644);
    if (shm_fd == -1) { perror("shm_open failed"); return 1; }
    if (ftruncate(shm_fd, SHM_SIZE) == -1) { perror("ftruncate failed"); shm_unlink(name); return 1; }
    shared_data_t *shared_data = mmap(NULL, SHM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, shm_fd, 0);
    if (shared_data == MAP_FAILED) { perror("mmap failed"); shm_unlink(name); return 1; }
    shared_data->data_ready = 0;
    shared_data->data[0] = '\0';
    pid_t pid = fork();
    if (pid == 0) { execl("/proc/self/exe", argv[0], "child", out, (char *)NULL); _exit(127); }
    char buffer[1024];
    long sent = 0; /* MEASURE */
    while (1) {
        fgets(buffer, sizeof(buffer), stdin);
        while (shared_data->data_ready == 1) usleep(1000);
        strncpy(shared_data->data, buffer, sizeof(shared_data->data) - 1);
        shared_data->data[sizeof(shared_data->data) - 1] = '\0';
        shared_data->published_ns = now_ns(); /* MEASURE */
        shared_data->data_ready = 1;
        if (buffer[0] == '\n') { shared_data->data_ready = 2; break; }
        if (++sent % 100 == 0) { fprintf(stderr, "C parent: %ld lines sent\n", sent); } /* MEASURE */
    }
    int status;
    waitpid(pid, &status, 0);
    munmap(shared_data, SHM_SIZE);
    close(shm_fd);
    shm_unlink(name);
    return 0;
}
