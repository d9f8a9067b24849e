/* Seed 004 (shared-mappings and copy-on-write chapters), as the seed prints it, with one change:
   the listing's extra closing brace is removed, so that it compiles. Built with -DPRIVATE, the
   mapping is MAP_PRIVATE instead of MAP_SHARED, the variant the seed's notes describe.
   The C side of the side-by-side check in tests/seed_programs.rs. */
#include <stdlib.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#define PAGE_SIZE (4096)

#define NUM_TARGET_PAGES 10000

#ifdef PRIVATE
#define SHARING MAP_PRIVATE
#else
#define SHARING MAP_SHARED
#endif

int gets(char*);

int main(int argc, char** arv){

    pid_t pid;
    char* buffer;


    buffer = (char*)mmap(NULL, PAGE_SIZE*NUM_TARGET_PAGES, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | SHARING, 0, 0);
    if (buffer == NULL){
        printf("mmap error\n");
        return 1;
    }

    pid = fork();

    if(pid == -1){
        printf("fork error\n");
        return 2;
    }

    if(pid == 0){
        printf("give me a string:\n");
        gets(buffer);
        return 0;
    }

    wait(NULL);

    printf("%s\n",buffer);

    return 0;
}
