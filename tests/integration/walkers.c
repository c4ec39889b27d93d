/* glibc's directory walkers, the ones that reach the file system through
 * glibc-internal calls: the shim test runs this under a mount and on the local
 * copy and compares the outputs (root prefix replaced).
 *   walkers ROOT [PARTIAL_FILE]
 *   walkers --glob ROOT PATTERN      glob(ROOT/PATTERN, GLOB_MARK)
 *   walkers --nftw DIR               nftw(DIR, FTW_PHYS), every entry
 *   walkers --spawn DIR FILE         posix_spawn with addchdir_np and addopen
 *   walkers --seekdir DIR            readdir to the end, again after seekdir and rewinddir
 *   walkers --spawn-actions DIR NAME posix_spawn actions that depend on the ones before
 * Prints, for ROOT: glob of ROOT/images/class[0-9]/img*.png and
 * ROOT/images/* (GLOB_MARK), scandir of ROOT/names sorted, nftw (physical and
 * depth-first) and ftw of ROOT/images with type and size. Then it opens
 * PARTIAL_FILE (a large file not yet cached: its fd is partial), reads one
 * byte, and execl's a shell that prints the md5 of the names file and of that fd,
 * inherited: exec must complete the file first, or the shell reads holes. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <glob.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static size_t root_length;

static int show_nftw(const char* path, const struct stat* st, int type, struct FTW* ftw) {
  printf("nftw %s type=%d size=%lld level=%d base=%s\n", path + root_length, type,
         type == FTW_F ? (long long)st->st_size : -1LL, ftw->level, path + ftw->base);
  return 0;
}

static int show_ftw(const char* path, const struct stat* st, int type) {
  printf("ftw %s type=%d size=%lld\n", path + root_length, type, type == FTW_F ? (long long)st->st_size : -1LL);
  return 0;
}

static int stop_at_third(const char* path, const struct stat* st, int type, struct FTW* ftw) {
  static int seen;
  (void)path, (void)st, (void)type, (void)ftw;
  return ++seen == 3 ? 42 : 0;
}

static int not_dot(const struct dirent* e) { return e->d_name[0] != '.'; }

static int show_any(const char* path, const struct stat* st, int type, struct FTW* ftw) {
  (void)st;
  printf("nftw %s type=%d level=%d\n", path + root_length, type, ftw->level);
  return 0;
}

int main(int argc, char** argv) {
  if (argc == 4 && strcmp(argv[1], "--glob") == 0) {
    /* walkers --glob ROOT PATTERN: glob(ROOT/PATTERN), ROOT cut from what it prints */
    char pattern[4096];
    glob_t g;
    root_length = strlen(argv[2]);
    snprintf(pattern, sizeof pattern, "%s/%s", argv[2], argv[3]);
    int rc = glob(pattern, GLOB_MARK, NULL, &g);
    printf("glob rc=%d\n", rc);
    for (size_t i = 0; rc == 0 && i < g.gl_pathc; ++i) printf("glob %s\n", g.gl_pathv[i] + root_length);
    return 0;
  }
  if (argc == 4 && strcmp(argv[1], "--spawn") == 0) {
    /* walkers --spawn DIR FILE: posix_spawn of sh -c 'pwd; md5sum' with its
     * cwd DIR (addchdir_np) and stdin FILE (addopen); then one whose stdout
     * is FILE opened to write (addopen O_WRONLY|O_TRUNC): its errno. */
    extern char** environ;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addchdir_np(&fa, argv[2]);
    posix_spawn_file_actions_addopen(&fa, 0, argv[3], O_RDONLY, 0);
    char* child[] = {"sh", "-c", "pwd; md5sum", NULL};
    pid_t pid;
    fflush(stdout);
    int rc = posix_spawn(&pid, "/bin/sh", &fa, NULL, child, environ);
    int status = -1;
    if (rc == 0) waitpid(pid, &status, 0);
    printf("spawn rc=%s status=%d\n", rc == 0 ? "0" : strerrorname_np(rc), status);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, argv[3], O_WRONLY | O_TRUNC, 0);
    char* writer[] = {"sh", "-c", "echo overwritten", NULL};
    rc = posix_spawn(&pid, "/bin/sh", &fa, NULL, writer, environ);
    if (rc == 0) waitpid(pid, &status, 0);
    printf("spawn-write rc=%s\n", rc == 0 ? "0" : strerrorname_np(rc));
    posix_spawn_file_actions_destroy(&fa);
    return 0;
  }
  if (argc == 4 && strcmp(argv[1], "--spawn-actions") == 0) {
    /* walkers --spawn-actions DIR NAME: posix_spawn file actions whose paths
     * or fd numbers depend on the actions before them; the child prints the
     * md5 of what it got. */
    extern char** environ;
    const char* dir = argv[2];
    const char* name = argv[3];
    char full[4096];
    snprintf(full, sizeof full, "%s/%s", dir, name);
    for (int c = 0; c < 10; ++c) {
      posix_spawn_file_actions_t fa;
      posix_spawn_file_actions_init(&fa);
      const char* script = "md5sum";
      char old_cwd[4096];
      if (getcwd(old_cwd, sizeof old_cwd) == NULL) return 1;
      switch (c) {
        case 0:  /* a relative open after a chdir action: in DIR */
          posix_spawn_file_actions_addchdir_np(&fa, dir);
          posix_spawn_file_actions_addopen(&fa, 0, name, O_RDONLY, 0);
          break;
        case 1:  /* the same, to write: refused */
          posix_spawn_file_actions_addchdir_np(&fa, dir);
          posix_spawn_file_actions_addopen(&fa, 1, name, O_WRONLY | O_CREAT, 0644);
          script = "echo overwritten";
          break;
        case 2:  /* an earlier action takes fd 3 */
          posix_spawn_file_actions_addopen(&fa, 3, "/etc/hostname", O_RDONLY, 0);
          posix_spawn_file_actions_addopen(&fa, 4, full, O_RDONLY, 0);
          script = "md5sum <&4";
          break;
        case 3:  /* fd 3 replaced by a dup2 first */
          posix_spawn_file_actions_adddup2(&fa, 2, 3);
          posix_spawn_file_actions_addopen(&fa, 0, full, O_RDONLY, 0);
          break;
        case 4:  /* every fd from 3 closed first */
          posix_spawn_file_actions_addclosefrom_np(&fa, 3);
          posix_spawn_file_actions_addopen(&fa, 0, full, O_RDONLY, 0);
          break;
        case 5:  /* the parent's cwd in DIR; the child changes to /etc first */
          if (chdir(dir) != 0) return 1;
          posix_spawn_file_actions_addchdir_np(&fa, "/etc");
          posix_spawn_file_actions_addopen(&fa, 0, "hostname", O_RDONLY, 0);
          break;
        case 6: {  /* fchdir to an fd an earlier dup2 action gives the child */
          int d = open(dir, O_RDONLY | O_DIRECTORY);
          posix_spawn_file_actions_adddup2(&fa, d, 60);
          posix_spawn_file_actions_addfchdir_np(&fa, 60);
          posix_spawn_file_actions_addopen(&fa, 0, name, O_RDONLY, 0);
          break;
        }
        case 7: {  /* fchdir to the parent's fd on DIR */
          int d = open(dir, O_RDONLY | O_DIRECTORY);
          if (dup2(d, 61) < 0) return 1;
          posix_spawn_file_actions_addfchdir_np(&fa, 61);
          posix_spawn_file_actions_addopen(&fa, 0, name, O_RDONLY, 0);
          break;
        }
        case 8: {  /* ten opens in one object; the child reads the tenth */
          for (int fd = 3; fd < 13; ++fd) posix_spawn_file_actions_addopen(&fa, fd, full, O_RDONLY, 0);
          script = "md5sum < /dev/fd/12";
          break;
        }
        case 9:  /* a directory opened for the child */
          posix_spawn_file_actions_addopen(&fa, 0, dir, O_RDONLY | O_DIRECTORY, 0);
          script = "test -d /dev/stdin && echo a directory";
          break;
      }
      char* child[] = {"sh", "-c", (char*)script, NULL};
      pid_t pid;
      fflush(stdout);
      int rc = posix_spawn(&pid, "/bin/sh", &fa, NULL, child, environ);
      int status = -1;
      if (rc == 0) waitpid(pid, &status, 0);
      fflush(stdout);
      printf("case %d: spawn rc=%s status=%d\n", c, rc == 0 ? "0" : strerrorname_np(rc), status);
      posix_spawn_file_actions_destroy(&fa);
      if (chdir(old_cwd) != 0) return 1;
    }
    return 0;
  }
  if (argc == 3 && strcmp(argv[1], "--seekdir") == 0) {
    /* walkers --seekdir DIR: its names read to the end, then again from a
     * position telldir gave at the start (seekdir), then after rewinddir */
    DIR* d = opendir(argv[2]);
    if (d == NULL) {
      printf("opendir: %s\n", strerror(errno));
      return 0;
    }
    long start = telldir(d);
    for (int pass = 0; pass < 3; ++pass) {
      if (pass == 1) seekdir(d, start);
      if (pass == 2) rewinddir(d);
      struct dirent* e;
      int count = 0;
      while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] != '.') printf("pass %d: %s\n", pass, e->d_name);
        ++count;
      }
      printf("pass %d: %d entries\n", pass, count);
    }
    long end = telldir(d);  /* at the end: nothing more after a seek there */
    seekdir(d, end);
    int after = 0;
    while (readdir(d) != NULL) ++after;
    printf("after seekdir to the end: %d entries\n", after);
    closedir(d);
    return 0;
  }
  if (argc == 3 && strcmp(argv[1], "--nftw") == 0) {
    /* walkers --nftw DIR: nftw(DIR) with no type filter, DIR cut from what it prints */
    root_length = strlen(argv[2]);
    printf("nftw rc=%d\n", nftw(argv[2], show_any, 8, FTW_PHYS));
    return 0;
  }
  if (argc != 2 && argc != 3) {
    fprintf(stderr, "usage: walkers ROOT [PARTIAL_FILE]\n");
    return 2;
  }
  const char* root = argv[1];
  root_length = strlen(root);
  char pattern[4096];
  glob_t g;
  snprintf(pattern, sizeof pattern, "%s/images/class[0-9]/img*.png", root);
  int rc = glob(pattern, 0, NULL, &g);
  printf("glob rc=%d n=%zu\n", rc, rc == 0 ? g.gl_pathc : 0);
  for (size_t i = 0; rc == 0 && i < g.gl_pathc; ++i) printf("glob %s\n", g.gl_pathv[i] + root_length);
  if (rc == 0) globfree(&g);
  snprintf(pattern, sizeof pattern, "%s/images/*", root);
  rc = glob(pattern, GLOB_MARK, NULL, &g);
  for (size_t i = 0; rc == 0 && i < g.gl_pathc; ++i) printf("glob-mark %s\n", g.gl_pathv[i] + root_length);
  if (rc == 0) globfree(&g);
  snprintf(pattern, sizeof pattern, "%s/nope/*", root);
  printf("glob-nomatch rc=%d\n", glob(pattern, 0, NULL, &g));

  struct dirent** names;
  snprintf(pattern, sizeof pattern, "%s/names", root);
  int n = scandir(pattern, &names, not_dot, alphasort);
  printf("scandir n=%d\n", n);
  for (int i = 0; i < n; ++i) {
    printf("scandir %s type=%d\n", names[i]->d_name, names[i]->d_type);
    free(names[i]);
  }
  if (n >= 0) free(names);
  snprintf(pattern, sizeof pattern, "%s/nope", root);
  printf("scandir-missing n=%d\n", scandir(pattern, &names, NULL, alphasort));

  snprintf(pattern, sizeof pattern, "%s/images", root);
  /* Order within a directory is readdir order on both sides: sort outside. */
  printf("nftw rc=%d\n", nftw(pattern, show_nftw, 8, FTW_PHYS | FTW_DEPTH));
  printf("ftw rc=%d\n", ftw(pattern, show_ftw, 8));
  printf("nftw-stop rc=%d\n", nftw(pattern, stop_at_third, 8, FTW_PHYS));
  fflush(stdout);

  int partial_fd = -1;
  if (argc == 3) {
    int fd = open(argv[2], O_RDONLY);
    char byte;
    /* Inherited as it is (dup2 would complete the file itself). */
    if (fd < 0 || fd > 9 || pread(fd, &byte, 1, 0) != 1) {
      perror(argv[2]);
      return 1;
    }
    partial_fd = fd;
  }
  char inherited[32] = "";
  if (partial_fd >= 0) snprintf(inherited, sizeof inherited, "md5sum <&%d", partial_fd);
  snprintf(pattern, sizeof pattern, "cat '%s/names/with space.txt' | md5sum; %s", root, inherited);
  execl("/bin/sh", "sh", "-c", pattern, (char*)NULL);
  perror("execl");
  return 1;
}
