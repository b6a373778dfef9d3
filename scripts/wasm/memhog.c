// Allocates (and touches) memory one MiB at a time until the allocator refuses, then fails the
// way most programs do: a message on stderr and a non-zero exit.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// Each chunk points to the previous one: the allocations are live, so none can be optimised out.
static void *volatile last;

int main(void) {
    size_t total = 0;
    for (;;) {
        void **chunk = malloc(1 << 20);
        if (chunk == NULL) {
            fprintf(stderr, "out of memory after %zu MiB\n", total >> 20);
            return 1;
        }
        memset(chunk, 1, 1 << 20);
        *chunk = last;
        last = chunk;
        total += 1 << 20;
    }
}
