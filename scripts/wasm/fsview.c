// Prints what a WASI module can learn from the files it is given: for every directory named
// in its arguments, recursively, each entry in the order the directory lists it, with what
// stat() tells of it. An argument "+PATH" first writes the file PATH (an output). Deterministic
// runs must print the same bytes wherever the inputs were staged, but for what the executor's
// docstring names as still visible.
#include <dirent.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

static void show(const char *path) {
    struct stat st;
    if (stat(path, &st) != 0) {
        printf("%s stat-error\n", path);
        return;
    }
    printf("%s %s size=%lld nlink=%llu dev=%llu ino=%llu atime=%lld.%09ld mtime=%lld.%09ld "
           "ctime=%lld.%09ld\n",
           path, S_ISDIR(st.st_mode) ? "dir" : "file", (long long)st.st_size,
           (unsigned long long)st.st_nlink, (unsigned long long)st.st_dev,
           (unsigned long long)st.st_ino, (long long)st.st_atim.tv_sec, st.st_atim.tv_nsec,
           (long long)st.st_mtim.tv_sec, st.st_mtim.tv_nsec, (long long)st.st_ctim.tv_sec,
           st.st_ctim.tv_nsec);
    if (!S_ISDIR(st.st_mode)) return;
    DIR *dir = opendir(path);
    if (dir == NULL) {
        printf("%s opendir-error\n", path);
        return;
    }
    struct dirent *e;
    while ((e = readdir(dir)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        printf("%s lists %s d_ino=%llu\n", path, e->d_name, (unsigned long long)e->d_ino);
        char child[1024];
        snprintf(child, sizeof child, "%s/%s", path, e->d_name);
        show(child);
    }
    closedir(dir);
}

int main(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        if (argv[i][0] != '+') {
            show(argv[i]);
            continue;
        }
        FILE *out = fopen(argv[i] + 1, "w");
        if (out == NULL || fputs("written\n", out) < 0 || fclose(out) != 0) {
            printf("%s write-error\n", argv[i] + 1);
        }
    }
    return 0;
}
