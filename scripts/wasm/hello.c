/* Prints a greeting, its arguments and $GREETING: exercises argv, env and stdout. */
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv) {
    printf("hello from wasm\n");
    for (int i = 1; i < argc; i++) {
        printf("arg[%d]=%s\n", i, argv[i]);
    }
    const char *greeting = getenv("GREETING");
    if (greeting != NULL) {
        printf("GREETING=%s\n", greeting);
    }
    fprintf(stderr, "hello on stderr\n");
    return 0;
}
