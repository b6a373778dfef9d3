/*
 * Prints a line, then sleeps for argv[1] seconds (default 60) inside one WASI host call: the
 * module runs no WebAssembly meanwhile, so only the host side can stop waiting for it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

int main(int argc, char **argv) {
    int seconds = argc > 1 ? atoi(argv[1]) : 60;
    printf("sleeping %d\n", seconds);
    fflush(stdout);
    sleep((unsigned)seconds);
    printf("woke up\n");
    return 0;
}
