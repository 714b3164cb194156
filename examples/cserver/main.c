/*
 * cserver is an example edgefabric service in C: a small HTTP/1.1 server
 * with no language runtime of its own, built for WASI preview 1
 * (clang --target=wasm32-wasi, Debian's wasi-libc) or natively.
 *
 *	cserver           serve HTTP (WASI: the first preopened listening socket,
 *	                  which the agent makes of the pod's containerPort;
 *	                  natively: :$PORT, default 8080)
 *	cserver sha256    print the SHA-256 (hex) and the length of stdin
 *
 * Its HTTP endpoints, as examples/httpserver's:
 *
 *	GET  /             "hello from $HOSTNAME"
 *	GET  /work?n=N     the SHA-256 (hex) of N zero bytes (N > 2^24 or bad: 1024)
 *	GET  /bytes?n=N    N bytes of a fixed pseudo-random sequence (seed ?seed=S;
 *	                   not the sequence examples/httpserver sends)
 *	POST /sha256       the SHA-256 (hex) and the length of the request body
 *
 * HEAD works wherever GET does. One thread, non-blocking sockets and one
 * poll() loop (poll_oneoff under WASI); keep-alive and pipelined requests;
 * request bodies by Content-Length only (Transfer-Encoding gets 501), with
 * Expect: 100-continue. A
 * malformed request gets 400 and its connection is closed; the others go on.
 * At most $MAX_CONNS connections (default 256): beyond that the listener is
 * not polled and new connections wait in its backlog. A connection idle for
 * $IDLE_TIMEOUT seconds (default 60) is closed.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#ifdef __wasi__
#include <wasi/api.h>
#else
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#endif

#include "sha256.h"

enum {
	IN_CAP = 8192,          /* request head limit: more gets 431 */
	OUT_HIGH = 64 * 1024,   /* parse no further requests while more is unsent */
	STREAM_CHUNK = 64 * 1024,
	LINGER_S = 2,           /* how long a closing connection drains its input */
	WORK_MAX = 1 << 24,
};

struct conn {
	int fd;
	int eof;                /* the peer closed its side */
	int close_after;        /* close once out is sent */
	int dead;               /* close now */
	int lingering;          /* answered, write side shut: reading until the peer closes */
	time_t linger_until;
	time_t active;          /* last read or write */

	char in[IN_CAP];
	size_t in_off, in_len;

	char *out;
	size_t out_off, out_len, out_cap;

	/* The body of the current request still to read. */
	uint64_t body_left;
	int body_sha;           /* POST /sha256: hash it, then answer */
	int body_head;          /* ... answer without a body (never: POST) */
	int body_close;         /* ... and close after the answer */
	int keep10;             /* the request was HTTP/1.0 keep-alive: say so */
	struct sha256 hash;

	/* GET /bytes: bytes still to generate, and the generator. */
	uint64_t stream_left;
	uint64_t stream_state;
};

static struct conn **conns;
static int nconns, max_conns = 256;
static int idle_timeout = 60;
static const char *hostname = "edgefabric";
static char date[64];           /* "Date: ...\r\n" for this second */
static time_t now;

/* ---- output ---- */

static int reserve(struct conn *c, size_t n)
{
	if (c->out_off == c->out_len)
		c->out_off = c->out_len = 0;
	if (c->out_len + n <= c->out_cap)
		return 0;
	if (c->out_off > 0) {
		memmove(c->out, c->out + c->out_off, c->out_len - c->out_off);
		c->out_len -= c->out_off;
		c->out_off = 0;
		if (c->out_len + n <= c->out_cap)
			return 0;
	}
	size_t cap = c->out_cap ? c->out_cap : 4096;
	while (cap < c->out_len + n)
		cap *= 2;
	char *p = realloc(c->out, cap);
	if (p == NULL)
		return -1;
	c->out = p;
	c->out_cap = cap;
	return 0;
}

static void append(struct conn *c, const void *p, size_t n)
{
	if (reserve(c, n) < 0) {
		c->dead = 1;
		return;
	}
	memcpy(c->out + c->out_len, p, n);
	c->out_len += n;
}

static size_t pending(const struct conn *c) { return c->out_len - c->out_off; }

static const char *connection_header(const struct conn *c, int close)
{
	return close ? "Connection: close\r\n" : c->keep10 ? "Connection: keep-alive\r\n" : "";
}

/* respond appends a response with a text body. head: HEAD, so headers only;
 * close: close the connection after it (said in a Connection header). */
static void respond(struct conn *c, int status, const char *reason, const char *extra,
		    const char *body, size_t n, int head, int close)
{
	char h[512];
	int k = snprintf(h, sizeof h,
			 "HTTP/1.1 %d %s\r\n%sContent-Type: text/plain; charset=utf-8\r\n"
			 "Content-Length: %zu\r\n%s%s\r\n",
			 status, reason, date, n, extra ? extra : "", connection_header(c, close));
	if (k < 0 || (size_t)k >= sizeof h) {
		c->dead = 1;
		return;
	}
	append(c, h, (size_t)k);
	if (!head)
		append(c, body, n);
	if (close)
		c->close_after = 1;
}

static void respond_text(struct conn *c, int status, const char *reason, const char *extra,
			 const char *text, int head, int close)
{
	respond(c, status, reason, extra, text, strlen(text), head, close);
}

/* bad answers a request that cannot be parsed, and closes the connection:
 * where the next request would start is unknown. */
static void bad(struct conn *c, int status, const char *reason, const char *why)
{
	char body[160];
	snprintf(body, sizeof body, "%s\n", why);
	respond_text(c, status, reason, NULL, body, 0, 1);
}

/* ---- request parsing ---- */

struct request {
	char *method;
	char *path;
	size_t path_len;
	char *query;            /* after '?', or NULL */
	int minor;              /* HTTP/1.minor */
	int head;               /* method HEAD */
	int has_length;
	uint64_t length;
	int close;              /* answer, then close */
	int keep10;             /* HTTP/1.0 with Connection: keep-alive */
	int expect_continue;    /* Expect: 100-continue */
	const char *error;      /* why it is malformed; status below */
	int status;
};

static int is_tchar(unsigned char ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
	       (ch != 0 && strchr("!#$%&'*+-.^_`|~", ch) != NULL);
}

static int parse_uint(const char *s, size_t n, uint64_t max, uint64_t *v)
{
	if (n == 0 || n > 20)
		return -1;
	uint64_t x = 0;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		unsigned d = (unsigned)(s[i] - '0');
		if (x > (max - d) / 10)
			return -1;
		x = x * 10 + d;
	}
	*v = x;
	return 0;
}

static int fail(struct request *r, int status, const char *why)
{
	r->status = status;
	r->error = why;
	return -1;
}

/* parse_request_line parses "METHOD SP target SP HTTP/1.x" (NUL-terminated,
 * no line end) in place. */
static int parse_request_line(char *line, struct request *r)
{
	char *sp1 = strchr(line, ' ');
	if (sp1 == NULL || sp1 == line)
		return fail(r, 400, "malformed request line");
	for (char *p = line; p < sp1; p++)
		if (!is_tchar((unsigned char)*p))
			return fail(r, 400, "malformed method");
	char *target = sp1 + 1;
	char *sp2 = strchr(target, ' ');
	if (sp2 == NULL || sp2 == target || strchr(sp2 + 1, ' ') != NULL)
		return fail(r, 400, "malformed request line");
	const char *version = sp2 + 1;
	if (strncmp(version, "HTTP/", 5) != 0 || version[5] < '0' || version[5] > '9' ||
	    version[6] != '.' || version[7] < '0' || version[7] > '9' || version[8] != 0)
		return fail(r, 400, "malformed HTTP version");
	if (version[5] != '1')
		return fail(r, 505, "HTTP/1.x only");
	for (char *p = target; p < sp2; p++)
		if ((unsigned char)*p <= ' ' || *p == 0x7f)
			return fail(r, 400, "malformed request target");
	*sp1 = 0;
	*sp2 = 0;
	r->method = line;
	r->minor = version[7] - '0';
	r->head = strcmp(line, "HEAD") == 0;
	if (strncmp(target, "http://", 7) == 0) { /* absolute form: drop scheme and authority */
		target = strchr(target + 7, '/');
		if (target == NULL)
			target = "/";
	}
	if (target[0] != '/')
		return fail(r, 400, "request target must be a path");
	r->path = target;
	char *q = strchr(target, '?');
	if (q != NULL) {
		*q = 0;
		r->query = q + 1;
	}
	r->path_len = strlen(r->path);
	return 0;
}

/* has_token reports whether the comma-separated list v holds token t. */
static int has_token(const char *v, const char *t)
{
	size_t n = strlen(t);
	while (*v) {
		while (*v == ' ' || *v == '\t' || *v == ',')
			v++;
		const char *e = v;
		while (*e && *e != ',')
			e++;
		const char *end = e;
		while (end > v && (end[-1] == ' ' || end[-1] == '\t'))
			end--;
		if ((size_t)(end - v) == n && strncasecmp(v, t, n) == 0)
			return 1;
		v = e;
	}
	return 0;
}

/* parse_head parses a request head of n bytes (ending in an empty line) in
 * place. */
static int parse_head(char *head, size_t n, struct request *r)
{
	memset(r, 0, sizeof *r);
	/* Split into NUL-terminated lines; a line ends in LF, CRLF tolerated. */
	char *lines[128];
	int nlines = 0;
	char *p = head, *end = head + n;
	while (p < end) {
		char *lf = memchr(p, '\n', (size_t)(end - p));
		if (lf == NULL)
			break;
		char *e = lf;
		if (e > p && e[-1] == '\r')
			e--;
		*e = 0;
		for (char *q = p; q < e; q++)
			if (*q == 0 || *q == '\r')
				return fail(r, 400, "control character in the request head");
		if (e == p)
			break; /* the empty line */
		if (nlines == (int)(sizeof lines / sizeof lines[0]))
			return fail(r, 431, "too many header fields");
		lines[nlines++] = p;
		p = lf + 1;
	}
	if (nlines == 0 || parse_request_line(lines[0], r) < 0)
		return nlines == 0 ? fail(r, 400, "no request line") : -1;

	int host = 0;
	for (int i = 1; i < nlines; i++) {
		char *line = lines[i];
		if (line[0] == ' ' || line[0] == '\t')
			return fail(r, 400, "obsolete line folding");
		char *colon = strchr(line, ':');
		if (colon == NULL || colon == line)
			return fail(r, 400, "malformed header field");
		for (char *q = line; q < colon; q++)
			if (!is_tchar((unsigned char)*q))
				return fail(r, 400, "malformed header field name");
		*colon = 0;
		char *v = colon + 1;
		while (*v == ' ' || *v == '\t')
			v++;
		char *ve = v + strlen(v);
		while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
			*--ve = 0;
		if (strcasecmp(line, "content-length") == 0) {
			uint64_t l;
			if (parse_uint(v, (size_t)(ve - v), UINT64_MAX / 2, &l) < 0)
				return fail(r, 400, "bad Content-Length");
			if (r->has_length && l != r->length)
				return fail(r, 400, "conflicting Content-Length");
			r->has_length = 1;
			r->length = l;
		} else if (strcasecmp(line, "transfer-encoding") == 0) {
			return fail(r, 501, "Transfer-Encoding is not supported: send a Content-Length");
		} else if (strcasecmp(line, "host") == 0) {
			host++;
		} else if (strcasecmp(line, "expect") == 0) {
			if (strcasecmp(v, "100-continue") != 0)
				return fail(r, 417, "unknown expectation");
			r->expect_continue = r->minor == 1;
		} else if (strcasecmp(line, "connection") == 0) {
			if (has_token(v, "close"))
				r->close = 1;
			else if (has_token(v, "keep-alive"))
				r->keep10 = r->minor == 0;
		}
	}
	if (r->minor == 1 && host != 1)
		return fail(r, 400, host ? "more than one Host" : "no Host");
	if (r->minor == 0 && !r->keep10)
		r->close = 1;
	if (r->close)
		r->keep10 = 0;
	return 0;
}

/* query_value finds name=value in a query string and returns value's length,
 * or -1 without it. */
static long query_value(const char *q, const char *name, const char **v)
{
	size_t n = strlen(name);
	while (q != NULL && *q) {
		const char *e = strchr(q, '&');
		size_t len = e ? (size_t)(e - q) : strlen(q);
		if (len > n && strncmp(q, name, n) == 0 && q[n] == '=') {
			*v = q + n + 1;
			return (long)(len - n - 1);
		}
		q = e ? e + 1 : NULL;
	}
	return -1;
}

/* ---- endpoints ---- */

static uint64_t splitmix(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* stream appends the next chunk of a GET /bytes answer. */
static void stream(struct conn *c)
{
	size_t n = c->stream_left < STREAM_CHUNK ? (size_t)c->stream_left : STREAM_CHUNK;
	if (reserve(c, n + 8) < 0) {
		c->dead = 1;
		return;
	}
	char *p = c->out + c->out_len;
	for (size_t i = 0; i < n; i += 8) {
		uint64_t x = splitmix(&c->stream_state);
		memcpy(p + i, &x, 8);
	}
	c->out_len += n;
	c->stream_left -= n;
}

static void sha_answer(struct conn *c)
{
	uint8_t sum[SHA256_SIZE];
	char body[2 * SHA256_SIZE + 32];
	uint64_t n = c->hash.len;
	sha256_final(&c->hash, sum);
	sha256_hex(sum, body);
	snprintf(body + 2 * SHA256_SIZE, sizeof body - 2 * SHA256_SIZE, " %llu\n", (unsigned long long)n);
	respond_text(c, 200, "OK", NULL, body, c->body_head, c->body_close);
	c->body_sha = 0;
}

static void route(struct conn *c, struct request *r)
{
	int get = strcmp(r->method, "GET") == 0 || r->head;
	int post = strcmp(r->method, "POST") == 0;
	const char *path = r->path;

	if (strcmp(path, "/sha256") == 0) {
		if (!post) {
			respond_text(c, 405, "Method Not Allowed", "Allow: POST\r\n", "method not allowed\n", r->head, r->close);
			return;
		}
		if (!r->has_length) {
			respond_text(c, 411, "Length Required", NULL, "a body needs a Content-Length\n", 0, 1);
			return;
		}
		sha256_init(&c->hash);
		c->body_sha = 1;
		if (r->expect_continue && r->length > 0) {
			static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
			append(c, cont, sizeof cont - 1);
		}
		c->body_head = 0;
		c->body_close = r->close;
		if (r->length == 0)
			sha_answer(c);
		return;
	}
	int known = strcmp(path, "/") == 0 || strcmp(path, "/work") == 0 || strcmp(path, "/bytes") == 0;
	if (!known) {
		respond_text(c, 404, "Not Found", NULL, "404 page not found\n", r->head, r->close);
		return;
	}
	if (!get) {
		respond_text(c, 405, "Method Not Allowed", "Allow: GET, HEAD\r\n", "method not allowed\n", r->head, r->close);
		return;
	}
	if (strcmp(path, "/") == 0) {
		char body[300];
		snprintf(body, sizeof body, "hello from %s\n", hostname);
		respond_text(c, 200, "OK", NULL, body, r->head, r->close);
	} else if (strcmp(path, "/work") == 0) {
		const char *v;
		long vn = query_value(r->query, "n", &v);
		uint64_t n;
		if (vn < 0 || parse_uint(v, (size_t)vn, WORK_MAX, &n) < 0)
			n = 1024;
		uint8_t sum[SHA256_SIZE];
		char body[2 * SHA256_SIZE + 2];
		sha256_zeros((size_t)n, sum);
		sha256_hex(sum, body);
		body[2 * SHA256_SIZE] = '\n';
		respond(c, 200, "OK", NULL, body, sizeof body - 1, r->head, r->close);
	} else { /* /bytes */
		const char *v;
		long vn = query_value(r->query, "n", &v);
		uint64_t n, seed = 0;
		if (vn < 0 || parse_uint(v, (size_t)vn, INT64_MAX, &n) < 0) {
			respond_text(c, 400, "Bad Request", NULL, "n must be a byte count\n", r->head, r->close);
			return;
		}
		vn = query_value(r->query, "seed", &v);
		if (vn >= 0)
			(void)parse_uint(v, (size_t)vn, UINT64_MAX, &seed);
		char h[256];
		int k = snprintf(h, sizeof h,
				 "HTTP/1.1 200 OK\r\n%sContent-Type: application/octet-stream\r\n"
				 "Content-Length: %llu\r\n%s\r\n",
				 date, (unsigned long long)n, connection_header(c, r->close));
		append(c, h, (size_t)k);
		if (r->close)
			c->close_after = 1;
		if (!r->head) {
			c->stream_left = n;
			c->stream_state = seed;
		}
	}
}

/* ---- connections ---- */

static int backpressured(const struct conn *c) { return pending(c) > OUT_HIGH || c->stream_left > 0; }

/* head_length returns the length of the request head at p (through its
 * empty line), or 0 if it is not complete. */
static size_t head_length(const char *p, size_t n)
{
	for (const char *lf = p; (lf = memchr(lf, '\n', (size_t)(p + n - lf))) != NULL; lf++) {
		const char *next = lf + 1;
		if (next < p + n && *next == '\n')
			return (size_t)(next + 1 - p);
		if (next + 1 < p + n && next[0] == '\r' && next[1] == '\n')
			return (size_t)(next + 2 - p);
	}
	return 0;
}

/* process answers the complete requests in c's input until it runs out or
 * the output backs up, and reports whether it did anything. */
static int process(struct conn *c)
{
	int progress = 0;
	while (!c->close_after && !c->dead && !backpressured(c)) {
		char *p = c->in + c->in_off;
		size_t n = c->in_len - c->in_off;
		if (c->body_left > 0) {
			if (n == 0)
				break;
			size_t m = n < c->body_left ? n : (size_t)c->body_left;
			if (c->body_sha)
				sha256_update(&c->hash, p, m);
			c->in_off += m;
			c->body_left -= m;
			progress = 1;
			if (c->body_left == 0 && c->body_sha)
				sha_answer(c);
			continue;
		}
		/* Empty lines before a request line are ignored (RFC 9112 2.2). */
		while (n > 0 && (*p == '\r' || *p == '\n')) {
			p++;
			n--;
			c->in_off++;
		}
		if (n == 0)
			break;
		size_t h = head_length(p, n);
		if (h == 0) {
			/* Say no to a bad request line before its head ends. */
			char *lf = memchr(p, '\n', n);
			if (lf != NULL) {
				char line[IN_CAP];
				size_t l = (size_t)(lf - p);
				if (l > 0 && p[l - 1] == '\r')
					l--;
				memcpy(line, p, l);
				line[l] = 0;
				struct request r = {0};
				if (memchr(line, 0, l) != NULL || parse_request_line(line, &r) < 0) {
					bad(c, r.status ? r.status : 400, r.status == 505 ? "HTTP Version Not Supported" : "Bad Request",
					    r.error ? r.error : "malformed request line");
					return 1;
				}
			}
			if (c->in_off > 0) { /* make room for the rest */
				memmove(c->in, p, n);
				c->in_off = 0;
				c->in_len = n;
			}
			if (n == IN_CAP)
				bad(c, 431, "Request Header Fields Too Large", "request head too large");
			break;
		}
		struct request r;
		int ok = parse_head(p, h, &r);
		c->in_off += h;
		progress = 1;
		if (ok < 0) {
			const char *reason = r.status == 431   ? "Request Header Fields Too Large"
					     : r.status == 417 ? "Expectation Failed"
					     : r.status == 501 ? "Not Implemented"
					     : r.status == 505 ? "HTTP Version Not Supported"
							       : "Bad Request";
			bad(c, r.status, reason, r.error);
			break;
		}
		if (r.has_length)
			c->body_left = r.length;
		/* A client waiting for 100 Continue before its body may not
		 * send it after a final answer: close after that answer rather
		 * than wait for a body to skip. */
		if (r.expect_continue && r.length > 0 &&
		    !(strcmp(r.path, "/sha256") == 0 && strcmp(r.method, "POST") == 0))
			r.close = 1;
		c->keep10 = r.keep10;
		route(c, &r);
		if (c->close_after && c->body_left > 0 && !c->body_sha)
			c->body_left = 0; /* closing anyway: no need to read it */
	}
	if (c->in_off == c->in_len)
		c->in_off = c->in_len = 0;
	return progress;
}

/* flush writes what it can of c's output, generating /bytes chunks as room
 * appears, and reports whether it wrote anything. */
static int flush(struct conn *c)
{
	int progress = 0;
	for (;;) {
		if (pending(c) == 0 && c->stream_left > 0)
			stream(c);
		if (pending(c) == 0 || c->dead)
			return progress;
		ssize_t w = write(c->fd, c->out + c->out_off, pending(c));
		if (w < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
				return progress;
			c->dead = 1;
			return progress;
		}
		c->out_off += (size_t)w;
		c->active = now;
		progress = 1;
	}
}

static int want_read(const struct conn *c)
{
	if (c->lingering)
		return 1;
	return !c->eof && !c->close_after && !c->dead && !backpressured(c) && c->in_len < IN_CAP;
}

/* linger reads and drops what the peer still sends after the answer that
 * closes its connection, until it closes too (or LINGER_S passes): closing
 * with unread input would reset the connection, and the peer might lose the
 * answer (a 400, a 431) before reading it. */
static void linger(struct conn *c)
{
	char buf[4096];
	ssize_t r = read(c->fd, buf, sizeof buf);
	if (r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR))
		c->dead = 1;
}

/* drive serves c after poll said it is ready (readable: read once). */
static void drive(struct conn *c, int readable)
{
	if (c->lingering) {
		if (readable)
			linger(c);
		return;
	}
	if (readable && want_read(c)) {
		ssize_t r = read(c->fd, c->in + c->in_len, IN_CAP - c->in_len);
		if (r > 0) {
			c->in_len += (size_t)r;
			c->active = now;
		} else if (r == 0) {
			c->eof = 1;
		} else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
			c->dead = 1;
		}
	}
	while (!c->dead) {
		int p = process(c);
		int w = flush(c);
		if (!p && !w)
			break;
	}
	if (c->dead || pending(c) > 0 || c->stream_left > 0)
		return;
	if (c->eof) {
		c->dead = 1;
	} else if (c->close_after) {
		if (shutdown(c->fd, SHUT_WR) < 0) {
			c->dead = 1;
			return;
		}
		c->lingering = 1;
		c->linger_until = now + LINGER_S;
	}
}

static void conn_free(struct conn *c)
{
	close(c->fd);
	free(c->out);
	free(c);
}

static void accept_all(int lfd)
{
	while (nconns < max_conns) {
#ifdef __wasi__
		/* wasi-libc's accept writes an unspecified address here. */
		struct sockaddr_storage sa;
		socklen_t salen = sizeof sa;
		int fd = accept4(lfd, (struct sockaddr *)&sa, &salen, SOCK_NONBLOCK);
#else
		int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
#endif
		if (fd < 0) {
			if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR && errno != ECONNABORTED)
				perror("cserver: accept");
			return;
		}
#ifndef __wasi__
		int one = 1;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one); /* as Go's net does */
#endif
		struct conn *c = calloc(1, sizeof *c);
		if (c == NULL) {
			close(fd);
			return;
		}
		c->fd = fd;
		c->active = now;
		conns[nconns++] = c;
	}
}

static void update_date(void)
{
	static time_t last = -1;
	now = time(NULL);
	if (now == last)
		return;
	last = now;
	struct tm tm;
	gmtime_r(&now, &tm);
	strftime(date, sizeof date, "Date: %a, %d %b %Y %H:%M:%S GMT\r\n", &tm);
}

static int serve(int lfd)
{
	struct pollfd *pfds = calloc((size_t)max_conns + 1, sizeof *pfds);
	conns = calloc((size_t)max_conns, sizeof *conns);
	if (pfds == NULL || conns == NULL) {
		fprintf(stderr, "cserver: out of memory\n");
		return 1;
	}
	for (;;) {
		update_date();
		pfds[0].fd = nconns < max_conns ? lfd : -1;
		pfds[0].events = POLLIN;
		for (int i = 0; i < nconns; i++) {
			struct conn *c = conns[i];
			short ev = 0;
			if (want_read(c))
				ev |= POLLIN;
			if (pending(c) > 0)
				ev |= POLLOUT;
			/* wasi-libc's poll refuses an entry that asks for nothing. */
			pfds[i + 1].fd = ev ? c->fd : -1;
			pfds[i + 1].events = ev;
			pfds[i + 1].revents = 0;
		}
		int polled = nconns;
		/* With connections open, wake up now and then to close idle ones. */
		int n = poll(pfds, (nfds_t)polled + 1, polled > 0 ? 1000 : -1);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			perror("cserver: poll");
			return 1;
		}
		update_date();
		for (int i = 0; i < polled; i++) {
			struct conn *c = conns[i];
			short re = pfds[i + 1].revents;
			if (re & (POLLERR | POLLNVAL)) {
				c->dead = 1;
				continue;
			}
			if (re)
				drive(c, (re & (POLLIN | POLLHUP)) != 0);
			else if (c->lingering ? now > c->linger_until : now - c->active > idle_timeout)
				c->dead = 1;
		}
		/* Drop the closed connections, keeping the order of the rest. */
		int k = 0;
		for (int i = 0; i < nconns; i++) {
			if (conns[i]->dead)
				conn_free(conns[i]);
			else
				conns[k++] = conns[i];
		}
		nconns = k;
		if (pfds[0].revents & POLLIN)
			accept_all(lfd);
	}
}

/* listener returns the socket to serve on. */
static int listener(char *where, size_t n)
{
#ifdef __wasi__
	/* The agent preopens the pod's listening sockets from fd 3 on,
	 * before its directories (volumes); other runtimes may put them
	 * after: take the first socket. */
	for (int fd = 3; fd < 64; fd++) {
		__wasi_fdstat_t st;
		__wasi_errno_t e = __wasi_fd_fdstat_get((__wasi_fd_t)fd, &st);
		if (e == __WASI_ERRNO_BADF)
			break;
		if (e != 0 || st.fs_filetype != __WASI_FILETYPE_SOCKET_STREAM)
			continue;
		int fl = fcntl(fd, F_GETFL);
		if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) {
			perror("cserver: non-blocking listener");
			return -1;
		}
		snprintf(where, n, "preopened fd %d", fd);
		return fd;
	}
	fprintf(stderr, "cserver: no preopened listening socket: give the container a containerPort\n");
	return -1;
#else
	const char *ps = getenv("PORT");
	uint64_t port = 8080;
	if (ps != NULL && *ps && parse_uint(ps, strlen(ps), 65535, &port) < 0) {
		fprintf(stderr, "cserver: bad PORT \"%s\"\n", ps);
		return -1;
	}
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		perror("cserver: socket");
		return -1;
	}
	int one = 1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(fd, 1024) < 0) {
		perror("cserver: listen");
		close(fd);
		return -1;
	}
	snprintf(where, n, "0.0.0.0:%llu", (unsigned long long)port);
	return fd;
#endif
}

static int env_int(const char *name, int def, int min, int max)
{
	const char *s = getenv(name);
	uint64_t v;
	if (s == NULL || *s == 0)
		return def;
	if (parse_uint(s, strlen(s), (uint64_t)max, &v) < 0 || v < (uint64_t)min) {
		fprintf(stderr, "cserver: %s must be a number from %d to %d; using %d\n", name, min, max, def);
		return def;
	}
	return (int)v;
}

static int hash_stdin(void)
{
	static char buf[65536];
	struct sha256 s;
	sha256_init(&s);
	for (;;) {
		ssize_t n = read(0, buf, sizeof buf);
		if (n == 0)
			break;
		if (n < 0) {
			if (errno == EINTR)
				continue;
			perror("cserver: read stdin");
			return 1;
		}
		sha256_update(&s, buf, (size_t)n);
	}
	uint64_t len = s.len;
	uint8_t sum[SHA256_SIZE];
	char hex[2 * SHA256_SIZE + 1];
	sha256_final(&s, sum);
	sha256_hex(sum, hex);
	printf("%s %llu\n", hex, (unsigned long long)len);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc > 1 && strcmp(argv[1], "sha256") == 0)
		return hash_stdin();
	if (argc > 1 && strcmp(argv[1], "serve") != 0) {
		fprintf(stderr, "cserver: unknown command \"%s\" (serve, sha256)\n", argv[1]);
		return 2;
	}
#ifndef __wasi__
	signal(SIGPIPE, SIG_IGN);
#endif
	const char *h = getenv("HOSTNAME");
	if (h != NULL && *h)
		hostname = h;
	max_conns = env_int("MAX_CONNS", max_conns, 1, 65536);
	idle_timeout = env_int("IDLE_TIMEOUT", idle_timeout, 1, 86400);

	char where[64];
	int lfd = listener(where, sizeof where);
	if (lfd < 0)
		return 1;
	printf("serving on %s\n", where);
	fflush(stdout);
	return serve(lfd);
}
