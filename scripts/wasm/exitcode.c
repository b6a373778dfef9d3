/* Exits with the code given as its first argument (default 0): exercises proc_exit. */
#include <stdlib.h>

int main(int argc, char **argv) {
    return argc > 1 ? atoi(argv[1]) : 0;
}
