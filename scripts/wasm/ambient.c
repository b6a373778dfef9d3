// Prints what a WASI module can learn from its surroundings: the clocks, random bytes, its
// arguments and environment. Deterministic runs must print the same bytes on every node.
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static void print_clock(const char *name, clockid_t id) {
    struct timespec ts;
    if (clock_gettime(id, &ts) != 0) {
        printf("%s=error\n", name);
        return;
    }
    printf("%s=%lld.%09ld\n", name, (long long)ts.tv_sec, ts.tv_nsec);
}

int main(int argc, char **argv) {
    print_clock("realtime", CLOCK_REALTIME);
    print_clock("monotonic", CLOCK_MONOTONIC);
    print_clock("realtime", CLOCK_REALTIME);
    struct timespec nap = {0, 5 * 1000 * 1000};
    nanosleep(&nap, NULL);
    print_clock("after_sleep", CLOCK_MONOTONIC);
    unsigned char bytes[48];
    if (getentropy(bytes, sizeof bytes) != 0) {
        fprintf(stderr, "getentropy failed\n");
        return 2;
    }
    printf("random=");
    for (size_t i = 0; i < sizeof bytes; i++) printf("%02x", bytes[i]);
    printf("\nrand=%d\n", rand());
    for (int i = 1; i < argc; i++) printf("arg[%d]=%s\n", i, argv[i]);
    for (char **e = environ; *e; e++) printf("env %s\n", *e);
    return 0;
}
