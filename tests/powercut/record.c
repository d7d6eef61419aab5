/* An LD_PRELOAD shim that records what a process does to the files under one directory, in order,
 * so that tests/powercut/explore.py can rebuild the directory as a power cut could have left it.
 *
 *   CITYGATE_RECORD_DIR  the directory to watch (absolute; files opened below it are tracked)
 *   CITYGATE_RECORD_LOG  the log: one line per operation (below)
 *   CITYGATE_RECORD_DATA the side file holding the bytes written, back to back
 *
 * Log lines, fields separated by one space, paths relative to the watched directory ("." for it):
 *   <ns> OPEN <fd> <flags> <existed 0|1> <path>
 *   <ns> WRITE <fd> <offset> <len> <data offset>     (write, pwrite, writev, pwritev: the offset
 *                                                      the bytes really went to, O_APPEND included)
 *   <ns> TRUNC <fd> <length>                          (ftruncate; O_TRUNC at open logs TRUNC 0)
 *   <ns> FSYNC <fd> | FDATASYNC <fd> | SFR <fd> <offset> <nbytes> <flags>
 *   <ns> DUP <oldfd> <newfd> | CLOSE <fd>
 *   <ns> RENAME <old> <new> | UNLINK <path> | MKDIR <path>
 * <ns> is CLOCK_MONOTONIC in nanoseconds (Python's time.monotonic() reads the same clock).
 * Only successful calls are logged; a call and its log line are one step under one mutex, so the
 * log's order is the order the kernel saw. Paths with spaces are not supported (the daemon's
 * file names have none). */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define MAX_FDS 65536

static pthread_mutex_t mu = PTHREAD_RECURSIVE_MUTEX_INITIALIZER_NP;
static char watch[PATH_MAX];
static size_t watchLen;
static int logFd = -1, dataFd = -1;
static long long dataOff;
static unsigned char tracked[MAX_FDS];
static int ready;

#define REAL(name)                      \
  static __typeof__(name)* real_##name; \
  if (!real_##name) real_##name = dlsym(RTLD_NEXT, #name)

static void init(void) {
  if (ready) return;
  ready = -1;
  const char *d = getenv("CITYGATE_RECORD_DIR"), *l = getenv("CITYGATE_RECORD_LOG"),
             *b = getenv("CITYGATE_RECORD_DATA");
  if (!d || !l || !b) return;
  if (!realpath(d, watch)) return;
  watchLen = strlen(watch);
  static int (*ropen)(const char*, int, ...);
  ropen = dlsym(RTLD_NEXT, "open");
  logFd = ropen(l, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  dataFd = ropen(b, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (logFd < 0 || dataFd < 0) return;
  dataOff = lseek(dataFd, 0, SEEK_END);
  ready = 1;
}

static long long nowNs(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void logLine(const char* fmt, ...) {
  char buf[3 * PATH_MAX];
  int n = snprintf(buf, sizeof buf, "%lld ", nowNs());
  va_list ap;
  va_start(ap, fmt);
  n += vsnprintf(buf + n, sizeof buf - n, fmt, ap);
  va_end(ap);
  if (n >= (int)sizeof buf - 1) n = sizeof buf - 2;
  buf[n++] = '\n';
  for (int off = 0; off < n;) {
    ssize_t w = write(logFd, buf + off, n - off); /* logFd is not tracked: not recursive */
    if (w <= 0) return;
    off += w;
  }
}

static long long saveData(const void* p, size_t n) {
  long long at = dataOff;
  for (size_t off = 0; off < n;) {
    ssize_t w = write(dataFd, (const char*)p + off, n - off);
    if (w <= 0) break;
    off += w;
  }
  dataOff += n;
  return at;
}

/* The path of `path` (relative to dirfd) relative to the watched dir, or NULL if not below it. */
static const char* relPath(int dirfd, const char* path, char* out) {
  char base[PATH_MAX], full[2 * PATH_MAX + 2];
  if (path[0] == '/') {
    snprintf(full, sizeof full, "%s", path);
  } else {
    if (dirfd == AT_FDCWD) {
      if (!getcwd(base, sizeof base)) return NULL;
    } else {
      char link[64];
      snprintf(link, sizeof link, "/proc/self/fd/%d", dirfd);
      ssize_t n = readlink(link, base, sizeof base - 1);
      if (n < 0) return NULL;
      base[n] = 0;
    }
    snprintf(full, sizeof full, "%s/%s", base, path);
  }
  size_t len = strlen(full);
  while (len > 1 && full[len - 1] == '/') full[--len] = 0;
  if (strncmp(full, watch, watchLen) != 0) return NULL;
  if (full[watchLen] == 0) return strcpy(out, ".");
  if (full[watchLen] != '/') return NULL;
  // Only the directory's own files: a subdirectory (the audit trail's spool, the same FileSpool
  // code as the one modelled here) is left out of the model.
  if (strchr(full + watchLen + 1, '/') != NULL) return NULL;
  snprintf(out, PATH_MAX, "%s", full + watchLen + 1);
  return out;
}

static int isTracked(int fd) {
  return ready == 1 && fd >= 0 && fd < MAX_FDS && tracked[fd];
}

static int afterOpen(int fd, int dirfd, const char* path, int flags, int existed) {
  char rel[PATH_MAX];
  if (fd < 0 || fd >= MAX_FDS) return fd;
  tracked[fd] = 0;
  if (relPath(dirfd, path, rel)) {
    tracked[fd] = 1;
    logLine("OPEN %d %d %d %s", fd, flags, existed, rel);
    if ((flags & O_TRUNC) && (flags & O_ACCMODE) != O_RDONLY) logLine("TRUNC %d 0", fd);
  }
  return fd;
}

static int existsAt(int dirfd, const char* path) {
  struct stat st;
  return fstatat(dirfd, path, &st, 0) == 0;
}

static int doOpenat(int dirfd, const char* path, int flags, mode_t mode, int (*fn)(int, const char*, int, ...)) {
  pthread_mutex_lock(&mu);
  init();
  int existed = ready == 1 ? existsAt(dirfd, path) : 1;
  int fd = fn(dirfd, path, flags, mode);
  int e = errno;
  if (ready == 1) afterOpen(fd, dirfd, path, flags, existed);
  pthread_mutex_unlock(&mu);
  errno = e;
  return fd;
}

static mode_t modeArg(int flags, va_list ap) {
  return (flags & O_CREAT) || (flags & __O_TMPFILE) == __O_TMPFILE ? (mode_t)va_arg(ap, int) : 0;
}

int openat(int dirfd, const char* path, int flags, ...) {
  REAL(openat);
  va_list ap;
  va_start(ap, flags);
  mode_t m = modeArg(flags, ap);
  va_end(ap);
  return doOpenat(dirfd, path, flags, m, real_openat);
}
int openat64(int dirfd, const char* path, int flags, ...) __attribute__((alias("openat")));

int open(const char* path, int flags, ...) {
  REAL(openat);
  va_list ap;
  va_start(ap, flags);
  mode_t m = modeArg(flags, ap);
  va_end(ap);
  return doOpenat(AT_FDCWD, path, flags, m, real_openat);
}
int open64(const char* path, int flags, ...) __attribute__((alias("open")));

int creat(const char* path, mode_t mode) {
  return open(path, O_CREAT | O_WRONLY | O_TRUNC, mode);
}
int creat64(const char* path, mode_t mode) __attribute__((alias("creat")));

static void logWrite(int fd, long long off, const struct iovec* iov, int cnt, ssize_t n) {
  if (n <= 0) return;
  long long at = dataOff;
  ssize_t left = n;
  for (int i = 0; i < cnt && left > 0; i++) {
    size_t k = iov[i].iov_len < (size_t)left ? iov[i].iov_len : (size_t)left;
    saveData(iov[i].iov_base, k);
    left -= k;
  }
  logLine("WRITE %d %lld %zd %lld", fd, off, n, at);
}

ssize_t write(int fd, const void* buf, size_t n) {
  REAL(write);
  if (!isTracked(fd)) return real_write(fd, buf, n);
  pthread_mutex_lock(&mu);
  ssize_t r = real_write(fd, buf, n);
  int e = errno;
  if (r > 0) {
    struct iovec v = {(void*)buf, (size_t)r};
    logWrite(fd, lseek(fd, 0, SEEK_CUR) - r, &v, 1, r);
  }
  pthread_mutex_unlock(&mu);
  errno = e;
  return r;
}

ssize_t pwrite(int fd, const void* buf, size_t n, off_t off) {
  REAL(pwrite);
  if (!isTracked(fd)) return real_pwrite(fd, buf, n, off);
  pthread_mutex_lock(&mu);
  ssize_t r = real_pwrite(fd, buf, n, off);
  int e = errno;
  if (r > 0) {
    /* pwrite on an O_APPEND fd appends on Linux whatever the offset */
    long long at = (fcntl(fd, F_GETFL) & O_APPEND) ? lseek(fd, 0, SEEK_END) - r : off;
    struct iovec v = {(void*)buf, (size_t)r};
    logWrite(fd, at, &v, 1, r);
  }
  pthread_mutex_unlock(&mu);
  errno = e;
  return r;
}
ssize_t pwrite64(int fd, const void* buf, size_t n, off_t off) __attribute__((alias("pwrite")));

ssize_t writev(int fd, const struct iovec* iov, int cnt) {
  REAL(writev);
  if (!isTracked(fd)) return real_writev(fd, iov, cnt);
  pthread_mutex_lock(&mu);
  ssize_t r = real_writev(fd, iov, cnt);
  int e = errno;
  if (r > 0) logWrite(fd, lseek(fd, 0, SEEK_CUR) - r, iov, cnt, r);
  pthread_mutex_unlock(&mu);
  errno = e;
  return r;
}

ssize_t pwritev(int fd, const struct iovec* iov, int cnt, off_t off) {
  REAL(pwritev);
  if (!isTracked(fd)) return real_pwritev(fd, iov, cnt, off);
  pthread_mutex_lock(&mu);
  ssize_t r = real_pwritev(fd, iov, cnt, off);
  int e = errno;
  if (r > 0) logWrite(fd, (fcntl(fd, F_GETFL) & O_APPEND) ? lseek(fd, 0, SEEK_END) - r : off, iov, cnt, r);
  pthread_mutex_unlock(&mu);
  errno = e;
  return r;
}
ssize_t pwritev64(int fd, const struct iovec* iov, int cnt, off_t off) __attribute__((alias("pwritev")));

int ftruncate(int fd, off_t len) {
  REAL(ftruncate);
  if (!isTracked(fd)) return real_ftruncate(fd, len);
  pthread_mutex_lock(&mu);
  int r = real_ftruncate(fd, len);
  int e = errno;
  if (r == 0) logLine("TRUNC %d %lld", fd, (long long)len);
  pthread_mutex_unlock(&mu);
  errno = e;
  return r;
}
int ftruncate64(int fd, off_t len) __attribute__((alias("ftruncate")));

static int syncCall(int fd, int (*fn)(int), const char* what) {
  if (!isTracked(fd)) return fn(fd);
  pthread_mutex_lock(&mu);
  int r = fn(fd);
  int e = errno;
  if (r == 0) logLine("%s %d", what, fd);
  pthread_mutex_unlock(&mu);
  errno = e;
  return r;
}
int fsync(int fd) {
  REAL(fsync);
  return syncCall(fd, real_fsync, "FSYNC");
}
int fdatasync(int fd) {
  REAL(fdatasync);
  return syncCall(fd, real_fdatasync, "FDATASYNC");
}

int sync_file_range(int fd, off64_t off, off64_t n, unsigned int flags) {
  REAL(sync_file_range);
  if (!isTracked(fd)) return real_sync_file_range(fd, off, n, flags);
  pthread_mutex_lock(&mu);
  int r = real_sync_file_range(fd, off, n, flags);
  int e = errno;
  if (r == 0) logLine("SFR %d %lld %lld %u", fd, (long long)off, (long long)n, flags);
  pthread_mutex_unlock(&mu);
  errno = e;
  return r;
}

int close(int fd) {
  REAL(close);
  if (!isTracked(fd)) return real_close(fd);
  pthread_mutex_lock(&mu);
  int r = real_close(fd);
  int e = errno;
  tracked[fd] = 0;
  logLine("CLOSE %d", fd);
  pthread_mutex_unlock(&mu);
  errno = e;
  return r;
}

static int logDup(int oldfd, int newfd) {
  if (newfd >= 0 && newfd < MAX_FDS) {
    if (tracked[newfd]) logLine("CLOSE %d", newfd);
    tracked[newfd] = 0;
    if (isTracked(oldfd)) {
      tracked[newfd] = 1;
      logLine("DUP %d %d", oldfd, newfd);
    }
  }
  return newfd;
}
int dup(int fd) {
  REAL(dup);
  pthread_mutex_lock(&mu);
  int r = real_dup(fd);
  int e = errno;
  logDup(fd, r);
  pthread_mutex_unlock(&mu);
  errno = e;
  return r;
}
int dup2(int fd, int fd2) {
  REAL(dup2);
  pthread_mutex_lock(&mu);
  int r = real_dup2(fd, fd2);
  int e = errno;
  if (r >= 0 && fd != fd2) logDup(fd, r);
  pthread_mutex_unlock(&mu);
  errno = e;
  return r;
}
int dup3(int fd, int fd2, int flags) {
  REAL(dup3);
  pthread_mutex_lock(&mu);
  int r = real_dup3(fd, fd2, flags);
  int e = errno;
  logDup(fd, r);
  pthread_mutex_unlock(&mu);
  errno = e;
  return r;
}

int fcntl(int fd, int cmd, ...) {
  REAL(fcntl);
  va_list ap;
  va_start(ap, cmd);
  long arg = va_arg(ap, long);
  va_end(ap);
  if (cmd != F_DUPFD && cmd != F_DUPFD_CLOEXEC) return real_fcntl(fd, cmd, arg);
  pthread_mutex_lock(&mu);
  int r = real_fcntl(fd, cmd, arg);
  int e = errno;
  logDup(fd, r);
  pthread_mutex_unlock(&mu);
  errno = e;
  return r;
}
int fcntl64(int fd, int cmd, ...) __attribute__((alias("fcntl")));

static int nameOp(int d1, const char* p1, int d2, const char* p2, int r, const char* what) {
  char a[PATH_MAX], b[PATH_MAX];
  if (r != 0 || ready != 1) return r;
  const char* ra = relPath(d1, p1, a);
  const char* rb = p2 ? relPath(d2, p2, b) : NULL;
  if (p2 && (ra || rb))
    logLine("RENAME %s %s", ra ? ra : "-", rb ? rb : "-");
  else if (!p2 && ra)
    logLine("%s %s", what, ra);
  return r;
}

#define NAMEOP(call, d1, p1, d2, p2, what) \
  pthread_mutex_lock(&mu);                 \
  init();                                  \
  int r = call;                            \
  int e = errno;                           \
  nameOp(d1, p1, d2, p2, r, what);         \
  pthread_mutex_unlock(&mu);               \
  errno = e;                               \
  return r;

int rename(const char* a, const char* b) {
  REAL(rename);
  NAMEOP(real_rename(a, b), AT_FDCWD, a, AT_FDCWD, b, "RENAME")
}
int renameat(int da, const char* a, int db, const char* b) {
  REAL(renameat);
  NAMEOP(real_renameat(da, a, db, b), da, a, db, b, "RENAME")
}
int renameat2(int da, const char* a, int db, const char* b, unsigned int flags) {
  REAL(renameat2);
  NAMEOP(real_renameat2(da, a, db, b, flags), da, a, db, b, "RENAME")
}
int unlink(const char* p) {
  REAL(unlink);
  NAMEOP(real_unlink(p), AT_FDCWD, p, 0, NULL, "UNLINK")
}
int unlinkat(int d, const char* p, int flags) {
  REAL(unlinkat);
  NAMEOP(real_unlinkat(d, p, flags), d, p, 0, NULL, (flags & AT_REMOVEDIR) ? "RMDIR" : "UNLINK")
}
int mkdir(const char* p, mode_t m) {
  REAL(mkdir);
  NAMEOP(real_mkdir(p, m), AT_FDCWD, p, 0, NULL, "MKDIR")
}
int mkdirat(int d, const char* p, mode_t m) {
  REAL(mkdirat);
  NAMEOP(real_mkdirat(d, p, m), d, p, 0, NULL, "MKDIR")
}
