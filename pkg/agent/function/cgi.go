package function

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/net/http/httpguts"
)

// Bounds of a CGI response's header section.
const (
	// MaxHeaderBytes bounds the header section, its empty line included.
	MaxHeaderBytes = 64 << 10
	// MaxHeaderLine bounds one header line.
	MaxHeaderLine = 8 << 10
	// MaxHeaders bounds the number of header lines.
	MaxHeaders = 100
)

// ErrMalformed is wrapped by the errors ParseHeader returns for output that
// is not a CGI response.
var ErrMalformed = errors.New("malformed CGI response")

// errNoOutput is ParseHeader's error when the module wrote nothing at all.
var errNoOutput = fmt.Errorf("%w: no output", ErrMalformed)

// Response is the header section of a CGI response.
type Response struct {
	// Status is the HTTP status: the Status header's code, else 302 with a
	// Location header, else 200.
	Status int
	// Header holds the header fields but Status, in canonical form, less
	// the hop-by-hop fields a server sets itself.
	Header http.Header
}

// hopByHop are header fields a function may not set: they describe the
// connection, which is the server's.
var hopByHop = []string{"Connection", "Keep-Alive", "Proxy-Connection", "Te", "Trailer", "Transfer-Encoding", "Upgrade"}

// ParseHeader reads the header section of a CGI response from br (RFC
// 3875, section 6): "Name: value" lines ended by "\n" or "\r\n", up to an
// empty line; br is left at the first byte of the body. It reads at most
// MaxHeaderBytes, and fails, with an error wrapping ErrMalformed, on a line
// that is no header field, more than MaxHeaders fields, a bad Status, no
// field at all, or output that ends before the empty line. br must buffer
// at least MaxHeaderLine bytes.
func ParseHeader(br *bufio.Reader) (Response, error) {
	resp := Response{Header: make(http.Header)}
	total, fields := 0, 0
	for {
		line, err := br.ReadSlice('\n')
		total += len(line)
		switch {
		case errors.Is(err, bufio.ErrBufferFull) || len(line) > MaxHeaderLine:
			return Response{}, fmt.Errorf("%w: header line longer than %d bytes", ErrMalformed, MaxHeaderLine)
		case total > MaxHeaderBytes:
			return Response{}, fmt.Errorf("%w: header section longer than %d bytes", ErrMalformed, MaxHeaderBytes)
		case errors.Is(err, io.EOF) && total == 0:
			return Response{}, errNoOutput
		case errors.Is(err, io.EOF):
			return Response{}, fmt.Errorf("%w: output ended inside the header section", ErrMalformed)
		case err != nil:
			return Response{}, fmt.Errorf("read CGI header: %w", err)
		}
		line = bytes.TrimSuffix(bytes.TrimSuffix(line, []byte("\n")), []byte("\r"))
		if len(line) == 0 {
			break
		}
		if fields++; fields > MaxHeaders {
			return Response{}, fmt.Errorf("%w: more than %d header fields", ErrMalformed, MaxHeaders)
		}
		name, value, ok := bytes.Cut(line, []byte(":"))
		if !ok || !httpguts.ValidHeaderFieldName(string(name)) {
			return Response{}, fmt.Errorf("%w: line %s is not a header field", ErrMalformed, quote(line))
		}
		v := strings.Trim(string(value), " \t")
		if !httpguts.ValidHeaderFieldValue(v) {
			return Response{}, fmt.Errorf("%w: header %s has an invalid value", ErrMalformed, quote(name))
		}
		key := http.CanonicalHeaderKey(string(name))
		if key == "Status" {
			if resp.Status != 0 {
				return Response{}, fmt.Errorf("%w: more than one Status header", ErrMalformed)
			}
			code, err := parseStatus(v)
			if err != nil {
				return Response{}, err
			}
			resp.Status = code
			continue
		}
		if slices.Contains(hopByHop, key) {
			continue
		}
		resp.Header[key] = append(resp.Header[key], v)
	}
	if fields == 0 {
		return Response{}, fmt.Errorf("%w: no header field before the empty line", ErrMalformed)
	}
	if resp.Status == 0 {
		resp.Status = http.StatusOK
		if resp.Header.Get("Location") != "" {
			resp.Status = http.StatusFound
		}
	}
	return resp, nil
}

// parseStatus parses a Status header's value: a three-digit code from 200
// to 599, then optionally a space and a reason phrase (which is dropped).
func parseStatus(v string) (int, error) {
	code, _, _ := strings.Cut(v, " ")
	n, err := strconv.Atoi(code)
	if err != nil || len(code) != 3 || n < 200 || n > 599 {
		return 0, fmt.Errorf("%w: bad Status %s", ErrMalformed, quote([]byte(v)))
	}
	return n, nil
}

// quote quotes b for an error message, cut to 64 bytes.
func quote(b []byte) string {
	if len(b) > 64 {
		return strconv.Quote(string(b[:64])) + "..."
	}
	return strconv.Quote(string(b))
}

// Env returns the CGI environment of request r (RFC 3875, section 4.1) as
// "KEY=VALUE" entries, appended to base (the function's own environment,
// whose entries the request's replace when they share a name). pathInfo is
// the part of the path that follows the function's name ("" or starting
// with "/"): PATH_INFO; what precedes it in r.URL.Path is SCRIPT_NAME.
//
// Every header field becomes HTTP_<NAME> (upper case, "-" as "_"; values of
// repeated fields joined by ", ", or "; " for Cookie), but for Content-Type
// and Content-Length, which are CONTENT_TYPE and CONTENT_LENGTH, and Proxy,
// which is dropped (httpoxy: a module would take it for HTTP_PROXY). A
// field whose name has other characters than letters, digits and "-" (an
// "_" would make X_A and X-A the same variable) or whose value holds a
// control character is dropped too, as is any variable whose value would
// hold one (Serve refuses a path that has one).
func Env(r *http.Request, pathInfo string, base []string) []string {
	env := make([]string, 0, len(base)+16+len(r.Header))
	host, port, err := net.SplitHostPort(r.Host)
	if err != nil {
		host, port = r.Host, "80"
		if r.TLS != nil {
			port = "443"
		}
	}
	remoteAddr, remotePort, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		remoteAddr, remotePort = r.RemoteAddr, ""
	}
	script := ""
	if p := r.URL.Path; strings.HasSuffix(p, pathInfo) {
		script = strings.TrimSuffix(p, pathInfo)
	}
	add := func(k, v string) {
		if !strings.ContainsFunc(v, isCtl) {
			env = append(env, k+"="+v)
		}
	}
	add("GATEWAY_INTERFACE", "CGI/1.1")
	add("SERVER_SOFTWARE", "edgefabric")
	add("SERVER_PROTOCOL", r.Proto)
	add("SERVER_NAME", host)
	add("SERVER_PORT", port)
	add("REQUEST_METHOD", r.Method)
	add("REQUEST_URI", r.URL.RequestURI())
	add("SCRIPT_NAME", script)
	add("PATH_INFO", pathInfo)
	add("QUERY_STRING", r.URL.RawQuery)
	add("REMOTE_ADDR", remoteAddr)
	if remotePort != "" {
		add("REMOTE_PORT", remotePort)
	}
	if r.TLS != nil {
		add("HTTPS", "on")
	}
	if ct := r.Header.Get("Content-Type"); ct != "" {
		add("CONTENT_TYPE", ct)
	}
	if r.ContentLength > 0 {
		add("CONTENT_LENGTH", strconv.FormatInt(r.ContentLength, 10))
	}
	// Header names that differ only in case ("x-a" and "X-A", in a
	// Header not built by net/http) are one variable, their values joined.
	fields := make(map[string][]string, len(r.Header))
	for _, name := range slices.Sorted(maps.Keys(r.Header)) {
		key := http.CanonicalHeaderKey(name)
		if key == "Proxy" || key == "Content-Type" || key == "Content-Length" ||
			name == "" || strings.ContainsFunc(name, badNameRune) {
			continue
		}
		k := "HTTP_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
		fields[k] = append(fields[k], r.Header[name]...)
	}
	for _, k := range slices.Sorted(maps.Keys(fields)) {
		sep := ", "
		if k == "HTTP_COOKIE" {
			sep = "; "
		}
		if len(fields[k]) > 0 {
			add(k, strings.Join(fields[k], sep))
		}
	}
	// The request's entries replace the function's own of the same name.
	names := make(map[string]bool, len(env))
	for _, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		names[k] = true
	}
	kept := make([]string, 0, len(base)+len(env))
	for _, kv := range base {
		k, _, _ := strings.Cut(kv, "=")
		if !names[k] {
			kept = append(kept, kv)
		}
	}
	kept = append(kept, env...)
	slices.Sort(kept[len(kept)-len(env):]) // map order out of the result
	return kept
}

// isCtl reports control characters, which no header value may hold and a
// C string cannot (NUL).
func isCtl(r rune) bool { return r < 0x20 && r != '\t' || r == 0x7f }

// badNameRune reports runes a header name must not have to become an
// environment variable.
func badNameRune(r rune) bool {
	return (r < 'a' || r > 'z') && (r < 'A' || r > 'Z') && (r < '0' || r > '9') && r != '-'
}
