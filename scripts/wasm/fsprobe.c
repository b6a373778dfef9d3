// Exercises a WASI module's file system and prints what it sees, one line per fact, so that
// two runs can be compared byte for byte. Each argument is a command, run in order:
//
//   tree:PATH        list PATH recursively in the order the directories list themselves,
//                    with stat() of each entry (ino, dev, type, size, nlink, times) and d_ino
//   write:PATH       create (or truncate) PATH and write a line to it; "append:PATH" appends
//   mkdir:PATH  rmdir:PATH  unlink:PATH  rename:OLD:NEW  symlink:TARGET:PATH  readlink:PATH
//   read:PATH        open PATH for reading and print its size as read
//   openw:PATH       open an existing PATH for writing only (no create, no truncate)
//   copy:SRC:DST[:N] copy SRC to DST in reads and writes of N bytes (default and at most
//                    1 MiB; the benchmark's workload)
//   sleep:MS         sleep MS milliseconds (a deterministic run's clock moves on at once)
//
// A failing command prints its errno by name ("unlink:/inputs/a ERROFS").
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static const char *errname(int e) {
    switch (e) {
        case EACCES: return "EACCES";
        case EBADF: return "EBADF";
        case EEXIST: return "EEXIST";
        case EINVAL: return "EINVAL";
        case EISDIR: return "EISDIR";
        case ELOOP: return "ELOOP";
        case ENOENT: return "ENOENT";
        case ENOTCAPABLE: return "ENOTCAPABLE";
        case ENOTDIR: return "ENOTDIR";
        case ENOTEMPTY: return "ENOTEMPTY";
        case EPERM: return "EPERM";
        case EROFS: return "EROFS";
        case EXDEV: return "EXDEV";
        default: return "E?";
    }
}

static void fail(const char *cmd, const char *arg) {
    printf("%s:%s %s\n", cmd, arg, errname(errno));
}

static void show(const char *path) {
    struct stat st;
    if (lstat(path, &st) != 0) {
        fail("stat", path);
        return;
    }
    const char *type = S_ISDIR(st.st_mode) ? "dir" : S_ISLNK(st.st_mode) ? "link" : "file";
    printf("%s %s ino=%llu dev=%llu size=%lld nlink=%llu atime=%lld.%09ld mtime=%lld.%09ld "
           "ctime=%lld.%09ld\n",
           path, type, (unsigned long long)st.st_ino, (unsigned long long)st.st_dev,
           (long long)st.st_size, (unsigned long long)st.st_nlink, (long long)st.st_atim.tv_sec,
           st.st_atim.tv_nsec, (long long)st.st_mtim.tv_sec, st.st_mtim.tv_nsec,
           (long long)st.st_ctim.tv_sec, st.st_ctim.tv_nsec);
    if (!S_ISDIR(st.st_mode)) return;
    DIR *dir = opendir(path);
    if (dir == NULL) {
        fail("opendir", path);
        return;
    }
    struct dirent *e;
    while ((e = readdir(dir)) != NULL) {
        printf("%s lists %s d_ino=%llu\n", path, e->d_name, (unsigned long long)e->d_ino);
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        char child[1024];
        snprintf(child, sizeof child, "%s/%s", path, e->d_name);
        show(child);
    }
    closedir(dir);
}

static void write_file(const char *path, const char *mode) {
    FILE *out = fopen(path, mode);
    if (out == NULL) {
        fail(mode[0] == 'a' ? "append" : "write", path);
        return;
    }
    fprintf(out, "written to %s\n", path);
    if (fclose(out) != 0) fail("close", path);
}

static void copy(const char *src, const char *dst, size_t block) {
    static char buf[1 << 20];
    if (block == 0 || block > sizeof buf) block = sizeof buf;
    int in = open(src, O_RDONLY);
    int out = open(dst, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (in < 0 || out < 0) {
        fail("copy", in < 0 ? src : dst);
        return;
    }
    long long total = 0;
    ssize_t n;
    while ((n = read(in, buf, block)) > 0) {
        if (write(out, buf, (size_t)n) != n) {
            fail("copy", dst);
            return;
        }
        total += n;
    }
    close(in);
    close(out);
    printf("copy:%s:%s %lld\n", src, dst, total);
}

static void read_file(const char *path) {
    int fd = open(path, O_RDONLY);
    if (fd < 0) {
        fail("read", path);
        return;
    }
    char buf[4096];
    long long total = 0;
    ssize_t n;
    while ((n = read(fd, buf, sizeof buf)) > 0) total += n;
    close(fd);
    printf("read:%s %lld\n", path, total);
}

// Splits "a:b" in place at its first colon; returns "b" (or "" without a colon).
static char *second(char *arg) {
    char *colon = strchr(arg, ':');
    if (colon == NULL) return arg + strlen(arg);
    *colon = '\0';
    return colon + 1;
}

int main(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        char *cmd = argv[i];
        char *arg = second(cmd);
        int rc = 0;
        if (strcmp(cmd, "tree") == 0) {
            show(arg);
            continue;
        } else if (strcmp(cmd, "write") == 0) {
            write_file(arg, "w");
            continue;
        } else if (strcmp(cmd, "append") == 0) {
            write_file(arg, "a");
            continue;
        } else if (strcmp(cmd, "read") == 0) {
            read_file(arg);
            continue;
        } else if (strcmp(cmd, "copy") == 0) {
            char *dst = second(arg);
            char *block = second(dst);
            copy(arg, dst, (size_t)atol(block));
            continue;
        } else if (strcmp(cmd, "sleep") == 0) {
            long ms = atol(arg);
            struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
            rc = nanosleep(&ts, NULL);
        } else if (strcmp(cmd, "openw") == 0) {
            int fd = open(arg, O_WRONLY);
            rc = fd < 0 ? -1 : close(fd);
        } else if (strcmp(cmd, "mkdir") == 0) {
            rc = mkdir(arg, 0755);
        } else if (strcmp(cmd, "rmdir") == 0) {
            rc = rmdir(arg);
        } else if (strcmp(cmd, "unlink") == 0) {
            rc = unlink(arg);
        } else if (strcmp(cmd, "rename") == 0) {
            char *to = second(arg);
            rc = rename(arg, to);
        } else if (strcmp(cmd, "symlink") == 0) {
            char *path = second(arg);
            rc = symlink(arg, path);
        } else if (strcmp(cmd, "readlink") == 0) {
            char target[256];
            ssize_t n = readlink(arg, target, sizeof target - 1);
            if (n >= 0) {
                target[n] = '\0';
                printf("readlink:%s %s\n", arg, target);
                continue;
            }
            rc = -1;
        } else {
            printf("unknown command %s\n", cmd);
            return 2;
        }
        if (rc != 0) {
            fail(cmd, arg);
        } else {
            printf("%s:%s ok\n", cmd, arg);
        }
    }
    return 0;
}
