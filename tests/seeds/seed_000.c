/* Seed 000's program, in the seed's shape: one page from mmap(MAP_PRIVATE|MAP_ANON), a message
 * written into it, fork; the child leaves with _exit(0), the parent waits and calls exit(0), and
 * nobody calls munmap. Run under valgrind --leak-check=full by tests/seeds/side_by_side.sh, next to
 * the book's `cleanup leak-probe`. */
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#define PAGE_SIZE 4096

void *allocate_memory(size_t size) {
    void *mem = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANON, -1, 0);
    if (mem == MAP_FAILED) {
        perror("mmap failed");
        exit(EXIT_FAILURE);
    }
    return mem;
}
void write_message(void *mem) { sprintf((char *)mem, "Temporary message\n"); }
void run_child(void) { _exit(0); }
void run_parent(void) {
    wait(NULL);
    exit(0);
}
int main(void) {
    void *mem = allocate_memory(PAGE_SIZE);
    write_message(mem);
    pid_t pid = fork();
    if (pid < 0) {
        munmap(mem, PAGE_SIZE);
        exit(EXIT_FAILURE);
    }
    if (pid == 0)
        run_child();
    else
        run_parent();
    return 0;
}
