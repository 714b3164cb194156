/*
 * wasicheck exercises the WASI preview 1 a C program sees through wasi-libc
 * (clang --target=wasm32-wasi) and prints machine-checkable results, one
 * "key value" line each, so that the tests of pkg/agent/runtime/wasm can
 * compare the module under the agent's runtime with the same program built
 * natively. Errors print as errno names (ENOENT), not numbers, which differ
 * between C libraries.
 *
 *	wasicheck args          argc and each argument's length and checksum
 *	wasicheck env           the environment's size and each entry's checksum
 *	wasicheck clock         realtime, monotonic and their resolutions
 *	wasicheck sleep MS      sleep MS milliseconds three ways; the time each took
 *	wasicheck random        getentropy and arc4random
 *	wasicheck exit N        exit(N) (proc_exit)
 *	wasicheck return N      return N from main
 *	wasicheck stdin         read stdin to its end: the reads' sizes, then EOF twice
 *	wasicheck interleave N  N lines to stdout and stderr in turn
 *	wasicheck poll MS       poll() stdin and a MS timeout; what came first
 *	wasicheck pollfile PATH MS  poll() stdin and the file at PATH, MS timeout
 *	wasicheck fs DIR        file system calls in the writable directory DIR
 *	wasicheck ro DIR FILE   writes to the read-only directory DIR holding FILE
 *	wasicheck escape DIR    ways out of the directory DIR (a volume; see cmd_escape)
 *	wasicheck fileops DIR N time N opens (open, fstat, close) and N stats of a
 *	                        file in DIR/a/b: nanoseconds per call
 *	wasicheck cat PATH      print the file at PATH
 *	wasicheck write PATH S  create PATH holding S
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static const char *errname(int e) {
	switch (e) {
	case 0: return "ok";
	case EACCES: return "EACCES";
	case EBADF: return "EBADF";
	case EEXIST: return "EEXIST";
	case EINVAL: return "EINVAL";
	case EISDIR: return "EISDIR";
	case ELOOP: return "ELOOP";
	case ENAMETOOLONG: return "ENAMETOOLONG";
	case ENOENT: return "ENOENT";
	case ENOSYS: return "ENOSYS";
	case EPERM: return "EPERM";
#ifdef ENOTCAPABLE
	case ENOTCAPABLE: return "ENOTCAPABLE";
#endif
	case ENOTDIR: return "ENOTDIR";
	case ENOTEMPTY: return "ENOTEMPTY";
	case ENOTSUP: return "ENOTSUP";
	case EROFS: return "EROFS";
	case EXDEV: return "EXDEV";
	case ESPIPE: return "ESPIPE";
	case EFAULT: return "EFAULT";
	case EIO: return "EIO";
	default: {
		static char buf[32];
		snprintf(buf, sizeof buf, "errno%d", e);
		return buf;
	}
	}
}

/* result prints key and the outcome of a call that returns -1 on error. */
static void result(const char *key, long r) {
	printf("%s %s\n", key, r < 0 ? errname(errno) : "ok");
}

static uint32_t checksum(const char *s, size_t n) {
	uint32_t h = 2166136261u; /* FNV-1a */
	for (size_t i = 0; i < n; i++) {
		h ^= (unsigned char)s[i];
		h *= 16777619u;
	}
	return h;
}

static int64_t nanos(clockid_t c) {
	struct timespec ts;
	if (clock_gettime(c, &ts) != 0)
		return -1;
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static char *path(const char *dir, const char *name) {
	static char bufs[4][PATH_MAX];
	static int n;
	char *b = bufs[n++ % 4];
	snprintf(b, PATH_MAX, "%s/%s", dir, name);
	return b;
}

static int writefile(const char *p, const char *s) {
	int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0)
		return -1;
	ssize_t n = write(fd, s, strlen(s));
	int e = errno;
	close(fd);
	errno = e;
	return n == (ssize_t)strlen(s) ? 0 : -1;
}

/* readfile prints key and the file's content (or the error). */
static void readfile(const char *key, const char *p) {
	char buf[256];
	int fd = open(p, O_RDONLY);
	if (fd < 0) {
		printf("%s %s\n", key, errname(errno));
		return;
	}
	ssize_t n = read(fd, buf, sizeof buf - 1);
	int e = errno;
	close(fd);
	if (n < 0) {
		printf("%s read:%s\n", key, errname(e));
		return;
	}
	buf[n] = 0;
	printf("%s \"%s\"\n", key, buf);
}

static const char *ftype(mode_t m) {
	if (S_ISREG(m)) return "reg";
	if (S_ISDIR(m)) return "dir";
	if (S_ISLNK(m)) return "lnk";
	if (S_ISCHR(m)) return "chr";
	if (S_ISBLK(m)) return "blk";
	if (S_ISFIFO(m)) return "fifo";
	if (S_ISSOCK(m)) return "sock";
	return "other";
}

static void statpath(const char *key, const char *p, int follow) {
	struct stat st;
	int r = follow ? stat(p, &st) : lstat(p, &st);
	if (r != 0) {
		printf("%s %s\n", key, errname(errno));
		return;
	}
	printf("%s %s size=%lld nlink=%llu\n", key, ftype(st.st_mode), S_ISDIR(st.st_mode) ? 0LL : (long long)st.st_size,
	       S_ISDIR(st.st_mode) ? 0ULL : (unsigned long long)st.st_nlink);
}

static int cmd_args(int argc, char **argv) {
	printf("argc %d\n", argc - 2);
	for (int i = 2; i < argc; i++)
		printf("arg%d len=%zu sum=%08x\n", i - 2, strlen(argv[i]), checksum(argv[i], strlen(argv[i])));
	return 0;
}

static int cmd_env(void) {
	int n = 0;
	size_t total = 0;
	for (char **e = environ; *e; e++, n++) {
		size_t l = strlen(*e);
		total += l;
		char *eq = strchr(*e, '=');
		printf("env %.*s len=%zu sum=%08x\n", eq ? (int)(eq - *e) : (int)l, *e, l, checksum(*e, l));
	}
	printf("envc %d\nenvbytes %zu\n", n, total);
	const char *v = getenv("EMPTY");
	printf("getenv_EMPTY %s\n", v == NULL ? "unset" : (*v ? "nonempty" : "empty"));
	return 0;
}

static int cmd_clock(void) {
	struct timespec res;
	int64_t rt = nanos(CLOCK_REALTIME);
	printf("realtime_s %lld\n", (long long)(rt / 1000000000));
	printf("time_s %lld\n", (long long)time(NULL));
	int64_t prev = nanos(CLOCK_MONOTONIC), back = 0;
	for (int i = 0; i < 10000; i++) {
		int64_t now = nanos(CLOCK_MONOTONIC);
		if (now < prev)
			back++;
		prev = now;
	}
	printf("monotonic_backwards %lld\n", (long long)back);
	printf("monotonic_positive %s\n", prev > 0 ? "yes" : "no");
	if (clock_getres(CLOCK_REALTIME, &res) == 0)
		printf("res_realtime_ok %s\n", res.tv_sec == 0 && res.tv_nsec > 0 && res.tv_nsec <= 1000000 ? "yes" : "no");
	else
		printf("res_realtime_ok %s\n", errname(errno));
	if (clock_getres(CLOCK_MONOTONIC, &res) == 0)
		printf("res_monotonic_ok %s\n", res.tv_sec == 0 && res.tv_nsec > 0 && res.tv_nsec <= 1000000 ? "yes" : "no");
	else
		printf("res_monotonic_ok %s\n", errname(errno));
	struct timespec ts;
	result("clock_gettime_process_cputime", clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts));
	return 0;
}

static int cmd_sleep(const char *arg) {
	long ms = atol(arg);
	int64_t t0 = nanos(CLOCK_MONOTONIC);
	struct timespec req = {ms / 1000, (ms % 1000) * 1000000};
	result("nanosleep", nanosleep(&req, NULL));
	int64_t t1 = nanos(CLOCK_MONOTONIC);
	result("usleep", usleep((useconds_t)ms * 1000));
	int64_t t2 = nanos(CLOCK_MONOTONIC);
	int e = clock_nanosleep(CLOCK_MONOTONIC, 0, &req, NULL);
	printf("clock_nanosleep %s\n", errname(e));
	int64_t t3 = nanos(CLOCK_MONOTONIC);
	printf("nanosleep_ms %lld\nusleep_ms %lld\nclock_nanosleep_ms %lld\n", (long long)((t1 - t0) / 1000000),
	       (long long)((t2 - t1) / 1000000), (long long)((t3 - t2) / 1000000));
	return 0;
}

static int cmd_random(void) {
	unsigned char a[256], b[256];
	result("getentropy", getentropy(a, sizeof a));
	result("getentropy2", getentropy(b, sizeof b));
	printf("getentropy_differ %s\n", memcmp(a, b, sizeof a) ? "yes" : "no");
	int distinct = 0;
	int seen[256] = {0};
	for (size_t i = 0; i < sizeof a; i++)
		if (!seen[a[i]]++)
			distinct++;
	printf("getentropy_spread %s\n", distinct > 100 ? "yes" : "no");
	uint32_t x = arc4random(), y = arc4random();
	printf("arc4random_differ %s\n", x != y ? "yes" : "no");
	return 0;
}

static int cmd_stdin(void) {
	char buf[4096];
	long total = 0, reads = 0;
	uint32_t h = 2166136261u;
	for (;;) {
		ssize_t n = read(0, buf, sizeof buf);
		if (n < 0) {
			printf("read_error %s\n", errname(errno));
			return 1;
		}
		if (n == 0)
			break;
		reads++;
		total += n;
		for (ssize_t i = 0; i < n; i++) {
			h ^= (unsigned char)buf[i];
			h *= 16777619u;
		}
	}
	printf("stdin_bytes %ld\nstdin_sum %08x\nstdin_reads_nonzero %s\n", total, h, reads > 0 || total == 0 ? "yes" : "no");
	printf("eof_again %zd\n", read(0, buf, sizeof buf));
	printf("eof_again2 %zd\n", read(0, buf, sizeof buf));
	return 0;
}

static int cmd_interleave(const char *arg) {
	int n = atoi(arg);
	for (int i = 0; i < n; i++) {
		printf("out %d\n", i);
		fflush(stdout);
		fprintf(stderr, "err %d\n", i); /* stderr is unbuffered */
	}
	return 0;
}

static int cmd_poll(const char *arg) {
	int ms = atoi(arg);
	struct pollfd p = {.fd = 0, .events = POLLIN};
	int64_t t0 = nanos(CLOCK_MONOTONIC);
	int r = poll(&p, 1, ms);
	int64_t t1 = nanos(CLOCK_MONOTONIC);
	printf("poll %d %s\n", r, r < 0 ? errname(errno) : "ok");
	printf("poll_revents_in %s\n", (p.revents & POLLIN) ? "yes" : "no");
	printf("poll_ms %lld\n", (long long)((t1 - t0) / 1000000));
	if (r > 0 && (p.revents & POLLIN)) {
		char buf[64];
		ssize_t n = read(0, buf, sizeof buf - 1);
		if (n >= 0) {
			buf[n] = 0;
			printf("poll_read \"%s\"\n", buf);
		}
	}
	return 0;
}

static int cmd_pollfile(const char *p, const char *arg) {
	int fd = open(p, O_RDONLY);
	if (fd < 0) {
		printf("open %s\n", errname(errno));
		return 1;
	}
	struct pollfd fds[2] = {{.fd = 0, .events = POLLIN}, {.fd = fd, .events = POLLIN}};
	int64_t t0 = nanos(CLOCK_MONOTONIC);
	int r = poll(fds, 2, atoi(arg));
	int64_t t1 = nanos(CLOCK_MONOTONIC);
	printf("poll %d %s\n", r, r < 0 ? errname(errno) : "ok");
	printf("poll_stdin_in %s\n", (fds[0].revents & POLLIN) ? "yes" : "no");
	printf("poll_file_in %s\n", (fds[1].revents & POLLIN) ? "yes" : "no");
	printf("poll_ms %lld\n", (long long)((t1 - t0) / 1000000));
	return 0;
}

static int cmd_fileops(const char *d, const char *arg) {
	long n = atol(arg);
	struct stat st;
	mkdir(path(d, "a"), 0755);
	mkdir(path(d, "a/b"), 0755);
	char *f = strdup(path(d, "a/b/file"));
	if (writefile(f, "x") != 0) {
		printf("create %s\n", errname(errno));
		return 1;
	}
	int64_t t0 = nanos(CLOCK_MONOTONIC);
	for (long i = 0; i < n; i++) {
		int fd = open(f, O_RDONLY);
		if (fd < 0 || fstat(fd, &st) != 0) {
			printf("open %s\n", errname(errno));
			return 1;
		}
		close(fd);
	}
	int64_t t1 = nanos(CLOCK_MONOTONIC);
	for (long i = 0; i < n; i++) {
		if (stat(f, &st) != 0) {
			printf("stat %s\n", errname(errno));
			return 1;
		}
	}
	int64_t t2 = nanos(CLOCK_MONOTONIC);
	printf("open_ns %lld\nstat_ns %lld\n", (long long)((t1 - t0) / n), (long long)((t2 - t1) / n));
	return 0;
}

static int cmd_fs(const char *d) {
	char buf[256];
	struct stat st;
	int fd;
	ssize_t n;

	result("mkdir", mkdir(path(d, "t"), 0755));
	result("mkdir_exists", mkdir(path(d, "t"), 0755));
	result("mkdir_noparent", mkdir(path(d, "missing/x"), 0755));
	char *f = strdup(path(d, "t/f"));
	fd = open(f, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	result("create", fd);
	printf("write %zd\n", write(fd, "hello world", 11));
	close(fd);
	result("create_excl_exists", open(f, O_WRONLY | O_CREAT | O_EXCL, 0644));
	fd = open(path(d, "t/excl"), O_WRONLY | O_CREAT | O_EXCL, 0644);
	result("create_excl_new", fd);
	close(fd);

	fd = open(f, O_RDWR);
	result("open_rdwr", fd);
	printf("pwrite %zd\n", pwrite(fd, "WORLD", 5, 6));
	memset(buf, 0, sizeof buf);
	n = pread(fd, buf, 11, 0);
	printf("pread %zd \"%s\"\n", n, buf);
	printf("pread_offset %zd\n", pread(fd, buf, 4, 9));
	printf("pread_eof %zd\n", pread(fd, buf, 4, 100));
	printf("lseek_cur_after_pread %lld\n", (long long)lseek(fd, 0, SEEK_CUR));
	printf("lseek_end %lld\n", (long long)lseek(fd, 0, SEEK_END));
	printf("lseek_set %lld\n", (long long)lseek(fd, 2, SEEK_SET));
	memset(buf, 0, sizeof buf);
	n = read(fd, buf, 3);
	printf("read_after_seek %zd \"%s\"\n", n, buf);
	printf("lseek_cur %lld\n", (long long)lseek(fd, 1, SEEK_CUR));
	errno = 0;
	off_t off = lseek(fd, -100, SEEK_SET);
	printf("lseek_negative %lld %s\n", (long long)off, errname(errno));
	printf("lseek_hole %lld\n", (long long)lseek(fd, 20, SEEK_SET));
	printf("write_hole %zd\n", write(fd, "X", 1));
	fstat(fd, &st);
	printf("fstat_size_hole %lld\n", (long long)st.st_size);
	result("ftruncate", ftruncate(fd, 5));
	fstat(fd, &st);
	printf("fstat_size_truncated %lld type=%s\n", (long long)st.st_size, ftype(st.st_mode));
	result("ftruncate_grow", ftruncate(fd, 8));
	memset(buf, 'z', sizeof buf);
	n = pread(fd, buf, 8, 0);
	printf("pread_grown %zd zeros=%s\n", n, buf[5] == 0 && buf[7] == 0 ? "yes" : "no");
	result("ftruncate_back", ftruncate(fd, 5));
	result("fsync", fsync(fd));
	result("fdatasync", fdatasync(fd));
	close(fd);
	n = read(fd, buf, 1);
	printf("read_closed %zd %s\n", n, errname(errno));

	fd = open(f, O_WRONLY | O_APPEND);
	result("open_append", fd);
	lseek(fd, 0, SEEK_SET);
	printf("write_append %zd\n", write(fd, "!!", 2));
	close(fd);
	readfile("content_appended", f);
	fd = open(f, O_WRONLY | O_TRUNC);
	result("open_trunc", fd);
	close(fd);
	statpath("stat_truncated", f, 1);
	writefile(f, "hello");

	fd = open(f, O_RDONLY);
	n = write(fd, "x", 1);
	printf("write_rdonly %zd %s\n", n, errname(errno));
	close(fd);
	fd = open(path(d, "t"), O_RDONLY | O_DIRECTORY);
	result("open_dir", fd);
	n = read(fd, buf, 1);
	printf("read_dir %zd %s\n", n, errname(errno));
	close(fd);

	statpath("stat_file", f, 1);
	statpath("stat_dir", path(d, "t"), 1);
	statpath("stat_missing", path(d, "t/nope"), 1);
	statpath("stat_notdir", path(d, "t/f/x"), 1);
	time_t now = time(NULL);
	stat(f, &st);
	printf("mtime_recent %s\n", st.st_mtime >= now - 10 && st.st_mtime <= now + 10 ? "yes" : "no");
	struct timespec times[2] = {{1000000000, 0}, {1000000000, 500}};
	result("utimensat", utimensat(AT_FDCWD, f, times, 0));
	stat(f, &st);
	printf("mtime_set %lld.%09ld\n", (long long)st.st_mtim.tv_sec, st.st_mtim.tv_nsec);
	printf("atime_set %lld\n", (long long)st.st_atim.tv_sec);

	/* errno values */
	result("open_missing", open(path(d, "t/nope"), O_RDONLY));
	result("open_notdir", open(path(d, "t/f/x"), O_RDONLY));
	result("open_dir_write", open(path(d, "t"), O_WRONLY));
	result("open_directory_file", open(f, O_RDONLY | O_DIRECTORY));
	result("open_trailing_slash_file", open(path(d, "t/f/"), O_RDONLY));
	result("rmdir_notempty", rmdir(path(d, "t")));
	result("rmdir_file", rmdir(f));
	result("rmdir_missing", rmdir(path(d, "t/nope")));
	result("unlink_dir", unlink(path(d, "t")));
	result("unlink_missing", unlink(path(d, "t/nope")));

	/* paths with .. that stay inside */
	mkdir(path(d, "t/sub"), 0755);
	readfile("dotdot_inside", path(d, "t/sub/../f"));
	readfile("dotdot_twice", path(d, "t/sub/../../t/f"));
	readfile("dot", path(d, "t/./f"));
	readfile("double_slash", path(d, "t//f"));

	/* rename */
	writefile(path(d, "t/a"), "A");
	writefile(path(d, "t/b"), "B");
	result("rename", rename(path(d, "t/a"), path(d, "t/a2")));
	result("rename_old_gone", open(path(d, "t/a"), O_RDONLY));
	result("rename_over_file", rename(path(d, "t/a2"), path(d, "t/b")));
	readfile("rename_over_content", path(d, "t/b"));
	result("rename_missing", rename(path(d, "t/nope"), path(d, "t/x")));
	mkdir(path(d, "t/d1"), 0755);
	mkdir(path(d, "t/d2"), 0755);
	writefile(path(d, "t/d2/x"), "x");
	result("rename_dir_over_nonempty", rename(path(d, "t/d1"), path(d, "t/d2")));
	result("rename_file_over_dir", rename(path(d, "t/b"), path(d, "t/d1")));
	result("rename_dir_over_file", rename(path(d, "t/d1"), path(d, "t/b")));
	result("rename_dir", rename(path(d, "t/d1"), path(d, "t/d3")));
	result("rename_into_sub", rename(path(d, "t/b"), path(d, "t/d2/b")));
	readfile("rename_into_sub_content", path(d, "t/d2/b"));

	/* hard links */
	result("link", link(f, path(d, "t/hard")));
	statpath("stat_linked", f, 1);
	readfile("link_content", path(d, "t/hard"));
	result("link_exists", link(f, path(d, "t/hard")));

	/* symlinks inside */
	result("symlink", symlink("f", path(d, "t/sl")));
	n = readlink(path(d, "t/sl"), buf, sizeof buf - 1);
	if (n >= 0)
		buf[n] = 0;
	printf("readlink %s \"%s\"\n", n < 0 ? errname(errno) : "ok", n < 0 ? "" : buf);
	readfile("symlink_read", path(d, "t/sl"));
	statpath("lstat_symlink", path(d, "t/sl"), 0);
	statpath("stat_symlink", path(d, "t/sl"), 1);
	result("symlink_dir", symlink("sub", path(d, "t/sdir")));
	writefile(path(d, "t/sub/in"), "in");
	readfile("symlink_dir_read", path(d, "t/sdir/in"));
	result("symlink_exists", symlink("f", path(d, "t/sl")));
	result("symlink_dangling", symlink("nothing", path(d, "t/dangling")));
	readfile("open_dangling", path(d, "t/dangling"));
	statpath("lstat_dangling", path(d, "t/dangling"), 0);
	result("readlink_file", readlink(f, buf, sizeof buf));
	result("unlink_symlink", unlink(path(d, "t/sl")));
	readfile("target_after_unlink_symlink", f);

	/* readdir: many entries, . and .. */
	mkdir(path(d, "many"), 0755);
	int made = 0;
	for (int i = 0; i < 300; i++) {
		char name[40];
		snprintf(name, sizeof name, "many/file-%03d-with-a-longer-name", i);
		if (writefile(path(d, name), "") == 0)
			made++;
	}
	printf("many_created %d\n", made);
	DIR *dir = opendir(path(d, "many"));
	if (dir == NULL) {
		printf("opendir %s\n", errname(errno));
	} else {
		int entries = 0, dot = 0, dotdot = 0, regular = 0;
		long sum = 0;
		struct dirent *e;
		while ((e = readdir(dir)) != NULL) {
			entries++;
			if (strcmp(e->d_name, ".") == 0)
				dot++;
			else if (strcmp(e->d_name, "..") == 0)
				dotdot++;
			else {
				int k;
				if (sscanf(e->d_name, "file-%d", &k) == 1)
					sum += k;
				if (e->d_type == DT_REG)
					regular++;
			}
		}
		printf("readdir entries=%d dot=%d dotdot=%d regular=%d sum=%ld\n", entries, dot, dotdot, regular, sum);
		rewinddir(dir);
		entries = 0;
		while (readdir(dir) != NULL)
			entries++;
		printf("readdir_rewound %d\n", entries);
		closedir(dir);
	}
	result("opendir_file", opendir(f) == NULL ? -1 : 0);
	for (int i = 0; i < 300; i++) {
		char name[40];
		snprintf(name, sizeof name, "many/file-%03d-with-a-longer-name", i);
		unlink(path(d, name));
	}
	result("rmdir_emptied", rmdir(path(d, "many")));

	/* cwd, as wasi-libc emulates it */
	char cwd[PATH_MAX];
	char *orig = getcwd(cwd, sizeof cwd);
	printf("getcwd_initial %s\n", orig ? "ok" : errname(errno));
	result("chdir", chdir(path(d, "t")));
	if (getcwd(cwd, sizeof cwd) == NULL)
		printf("getcwd %s\n", errname(errno));
	else
		printf("getcwd_is_dir %s\n", strcmp(cwd, path(d, "t")) == 0 ? "yes" : cwd);
	readfile("relative_read", "f");
	readfile("relative_dotdot", "../t/sub/in");
	result("relative_create", writefile("rel", "r"));
	readfile("relative_created", path(d, "t/rel"));
	result("chdir_dotdot", chdir(".."));
	if (getcwd(cwd, sizeof cwd) == NULL)
		printf("getcwd_up %s\n", errname(errno));
	else
		printf("getcwd_up_is_root %s\n", strcmp(cwd, d) == 0 ? "yes" : cwd);
	result("chdir_missing", chdir(path(d, "nope")));
	result("chdir_file", chdir(f));
	return 0;
}

static int cmd_ro(const char *d, const char *file) {
	char *f = strdup(path(d, file));
	readfile("ro_read", f);
	statpath("ro_stat", f, 1);
	result("ro_open_write", open(f, O_WRONLY));
	result("ro_open_rdwr", open(f, O_RDWR));
	result("ro_open_trunc", open(f, O_RDONLY | O_TRUNC));
	result("ro_open_append", open(f, O_WRONLY | O_APPEND));
	result("ro_create", open(path(d, "new"), O_WRONLY | O_CREAT, 0644));
	result("ro_mkdir", mkdir(path(d, "newdir"), 0755));
	result("ro_unlink", unlink(f));
	result("ro_rename", rename(f, path(d, "renamed")));
	result("ro_symlink", symlink(file, path(d, "sl")));
	result("ro_link", link(f, path(d, "hard")));
	struct timespec times[2] = {{1, 0}, {1, 0}};
	result("ro_utimensat", utimensat(AT_FDCWD, f, times, 0));
	int fd = open(f, O_RDONLY);
	result("ro_open_read", fd);
	result("ro_ftruncate", ftruncate(fd, 0));
	result("ro_fsync", fsync(fd));
	ssize_t n = write(fd, "x", 1);
	printf("ro_write_fd %zd %s\n", n, errname(errno));
	close(fd);
	readfile("ro_read_after", f);
	return 0;
}

/*
 * cmd_escape tries ways out of the volume DIR, whose host directory has a
 * sibling "outside" holding "secret": none may read it or create anything
 * next to it. Natively they all succeed.
 */
static int cmd_escape(const char *d) {
	char buf[256];
	result("esc_symlink_up", symlink("../outside", path(d, "up")));
	ssize_t n = readlink(path(d, "up"), buf, sizeof buf - 1);
	if (n >= 0)
		buf[n] = 0;
	printf("esc_readlink_up %s \"%s\"\n", n < 0 ? errname(errno) : "ok", n < 0 ? "" : buf);
	statpath("esc_lstat_up", path(d, "up"), 0);
	readfile("esc_read_via_up", path(d, "up/secret"));
	statpath("esc_stat_via_up", path(d, "up/secret"), 1);
	result("esc_mkdir_via_up", mkdir(path(d, "up/made-dir"), 0755));
	result("esc_create_via_up", writefile(path(d, "up/made-file"), "x"));
	result("esc_rename_via_up", rename(path(d, "up/secret"), path(d, "stolen")));
	result("esc_link_via_up", link(path(d, "up/secret"), path(d, "hard")));
	result("esc_opendir_via_up", opendir(path(d, "up")) == NULL ? -1 : 0);
	result("esc_symlink_abs", symlink("/etc/hostname", path(d, "abs")));
	readfile("esc_read_via_abs", path(d, "abs"));
	mkdir(path(d, "sub"), 0755);
	result("esc_symlink_zigzag", symlink("sub/../..", path(d, "zig")));
	readfile("esc_read_via_zigzag", path(d, "zig/outside/secret"));
	mkdir(path(d, "deep"), 0755);
	result("esc_symlink_deep", symlink("../../outside", path(d, "deep/l")));
	readfile("esc_read_via_deep", path(d, "deep/l/secret"));
	result("esc_symlink_dangling", symlink("../outside/made-by-link", path(d, "dangling")));
	result("esc_create_via_dangling", writefile(path(d, "dangling"), "x"));
	mkdir(path(d, "a"), 0755);
	mkdir(path(d, "a/b"), 0755);
	result("esc_symlink_inside", symlink("../../outside", path(d, "a/b/in")));
	result("esc_rename_symlink_up", rename(path(d, "a/b/in"), path(d, "moved")));
	readfile("esc_read_via_moved", path(d, "moved/secret"));
	readfile("esc_dotdot", path(d, "../outside/secret"));
	result("esc_create_dotdot", writefile(path(d, "../outside/made-dotdot"), "x"));
	writefile(path(d, "inside"), "inside");
	result("esc_unlink_via_up", unlink(path(d, "up/secret")));
	result("esc_chdir_via_up", chdir(path(d, "up")));
	result("esc_symlink_fine", symlink("sub/../inside", path(d, "fine")));
	readfile("esc_read_via_fine", path(d, "fine"));
	return 0;
}

int main(int argc, char **argv) {
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc < 2) {
		fprintf(stderr, "usage: wasicheck args|env|clock|sleep|random|exit|return|stdin|interleave|poll|pollfile|fs|fileops|ro|escape|cat|write ...\n");
		return 2;
	}
	const char *cmd = argv[1];
	if (strcmp(cmd, "args") == 0)
		return cmd_args(argc, argv);
	if (strcmp(cmd, "env") == 0)
		return cmd_env();
	if (strcmp(cmd, "clock") == 0)
		return cmd_clock();
	if (strcmp(cmd, "sleep") == 0 && argc == 3)
		return cmd_sleep(argv[2]);
	if (strcmp(cmd, "random") == 0)
		return cmd_random();
	if (strcmp(cmd, "exit") == 0 && argc == 3) {
		printf("exiting %d\n", atoi(argv[2]));
		exit(atoi(argv[2]));
	}
	if (strcmp(cmd, "return") == 0 && argc == 3) {
		printf("returning %d\n", atoi(argv[2]));
		return atoi(argv[2]);
	}
	if (strcmp(cmd, "stdin") == 0)
		return cmd_stdin();
	if (strcmp(cmd, "interleave") == 0 && argc == 3)
		return cmd_interleave(argv[2]);
	if (strcmp(cmd, "poll") == 0 && argc == 3)
		return cmd_poll(argv[2]);
	if (strcmp(cmd, "pollfile") == 0 && argc == 4)
		return cmd_pollfile(argv[2], argv[3]);
	if (strcmp(cmd, "fileops") == 0 && argc == 4)
		return cmd_fileops(argv[2], argv[3]);
	if (strcmp(cmd, "fs") == 0 && argc == 3)
		return cmd_fs(argv[2]);
	if (strcmp(cmd, "ro") == 0 && argc == 4)
		return cmd_ro(argv[2], argv[3]);
	if (strcmp(cmd, "escape") == 0 && argc == 3)
		return cmd_escape(argv[2]);
	if (strcmp(cmd, "cat") == 0 && argc == 3) {
		readfile("cat", argv[2]);
		return 0;
	}
	if (strcmp(cmd, "write") == 0 && argc == 4) {
		result("write", writefile(argv[2], argv[3]));
		return 0;
	}
	fprintf(stderr, "wasicheck: unknown command or arguments: %s\n", cmd);
	return 2;
}
