/* Spins forever without making a system call: only an epoch interrupt can stop it. */
#include <stdio.h>

int main(void) {
    printf("spinning\n");
    fflush(stdout);
    volatile unsigned long counter = 0;
    for (;;) {
        counter++;
    }
    return 0;
}
