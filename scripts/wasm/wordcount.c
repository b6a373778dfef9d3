/*
 * Counts the words of its argument strings and writes a report to <dir>/counts.txt, where
 * <dir> is the first argument (e.g. /outputs): exercises preopened, writable result paths.
 *
 * usage: wordcount.wasm DIR [TEXT...]
 */
#include <ctype.h>
#include <stdio.h>
#include <string.h>

static int count_words(const char *s) {
    int words = 0;
    int in_word = 0;
    for (; *s != '\0'; s++) {
        if (isspace((unsigned char)*s)) {
            in_word = 0;
        } else if (!in_word) {
            in_word = 1;
            words++;
        }
    }
    return words;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: wordcount DIR [TEXT...]\n");
        return 2;
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/counts.txt", argv[1]);
    FILE *out = fopen(path, "w");
    if (out == NULL) {
        perror(path);
        return 3;
    }
    int total = 0;
    for (int i = 2; i < argc; i++) {
        int n = count_words(argv[i]);
        total += n;
        fprintf(out, "%d %s\n", n, argv[i]);
    }
    fprintf(out, "total %d\n", total);
    fclose(out);
    printf("%d words\n", total);
    return 0;
}
