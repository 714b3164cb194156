// echo-c is a CGI function in C: it answers with the request's method, path
// and query on one line, then echoes the request body.
#include <stdio.h>
#include <stdlib.h>

static const char *env(const char *name) {
	const char *v = getenv(name);
	return v ? v : "";
}

int main(void) {
	printf("Content-Type: text/plain\r\nX-Function: echo-c\r\n\r\n");
	printf("%s %s?%s\n", env("REQUEST_METHOD"), env("PATH_INFO"), env("QUERY_STRING"));
	fflush(stdout);
	char buf[4096];
	size_t n;
	while ((n = fread(buf, 1, sizeof buf, stdin)) > 0) {
		fwrite(buf, 1, n, stdout);
	}
	return 0;
}
