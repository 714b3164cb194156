package function

import (
	"bufio"
	"crypto/tls"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestEnv(t *testing.T) {
	for _, tc := range []struct {
		name     string
		req      func() *http.Request
		pathInfo string
		base     []string
		want     []string
	}{{
		name: "GET with query and headers",
		req: func() *http.Request {
			r := httptest.NewRequest(http.MethodGet, "http://edge.local:8083/ns/fn/a/b?x=1&y=2", nil)
			r.RemoteAddr = "10.0.0.9:51000"
			r.Header.Set("User-Agent", "curl/8")
			r.Header.Add("Accept", "text/plain")
			r.Header.Add("Accept", "*/*")
			r.Header.Add("Cookie", "a=1")
			r.Header.Add("Cookie", "b=2")
			return r
		},
		pathInfo: "/a/b",
		base:     []string{"GREETING=hi"},
		want: []string{
			"GREETING=hi",
			"GATEWAY_INTERFACE=CGI/1.1",
			"HTTP_ACCEPT=text/plain, */*",
			"HTTP_COOKIE=a=1; b=2",
			"HTTP_USER_AGENT=curl/8",
			"PATH_INFO=/a/b",
			"QUERY_STRING=x=1&y=2",
			"REMOTE_ADDR=10.0.0.9",
			"REMOTE_PORT=51000",
			"REQUEST_METHOD=GET",
			"REQUEST_URI=/ns/fn/a/b?x=1&y=2",
			"SCRIPT_NAME=/ns/fn",
			"SERVER_NAME=edge.local",
			"SERVER_PORT=8083",
			"SERVER_PROTOCOL=HTTP/1.1",
			"SERVER_SOFTWARE=edgefabric",
		},
	}, {
		name: "POST body, TLS, no port, request variables replace the function's",
		req: func() *http.Request {
			r := httptest.NewRequest(http.MethodPost, "https://edge.local/fn", strings.NewReader("hello"))
			r.TLS = &tls.ConnectionState{}
			r.RemoteAddr = "[fe80::1]:7"
			r.Header.Set("Content-Type", "text/plain")
			r.Header.Set("Content-Length", "5")
			return r
		},
		pathInfo: "",
		base:     []string{"PATH_INFO=/from-pod", "KEEP=1"},
		want: []string{
			"KEEP=1",
			"CONTENT_LENGTH=5",
			"CONTENT_TYPE=text/plain",
			"GATEWAY_INTERFACE=CGI/1.1",
			"HTTPS=on",
			"PATH_INFO=",
			"QUERY_STRING=",
			"REMOTE_ADDR=fe80::1",
			"REMOTE_PORT=7",
			"REQUEST_METHOD=POST",
			"REQUEST_URI=/fn",
			"SCRIPT_NAME=/fn",
			"SERVER_NAME=edge.local",
			"SERVER_PORT=443",
			"SERVER_PROTOCOL=HTTP/1.1",
			"SERVER_SOFTWARE=edgefabric",
		},
	}, {
		name: "Proxy (httpoxy), underscores and control characters dropped",
		req: func() *http.Request {
			r := httptest.NewRequest(http.MethodGet, "http://h/p", nil)
			r.RemoteAddr = "pipe"
			r.Header.Set("Proxy", "http://evil")
			r.Header["X_Forwarded"] = []string{"smuggled"}
			r.Header["X-Nul"] = []string{"a\x00b"}
			r.Header["X-Ok"] = []string{"fine"}
			return r
		},
		pathInfo: "/elsewhere",
		want: []string{
			"GATEWAY_INTERFACE=CGI/1.1",
			"HTTP_X_OK=fine",
			"PATH_INFO=/elsewhere",
			"QUERY_STRING=",
			"REMOTE_ADDR=pipe",
			"REQUEST_METHOD=GET",
			"REQUEST_URI=/p",
			"SCRIPT_NAME=",
			"SERVER_NAME=h",
			"SERVER_PORT=80",
			"SERVER_PROTOCOL=HTTP/1.1",
			"SERVER_SOFTWARE=edgefabric",
		},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			got := Env(tc.req(), tc.pathInfo, tc.base)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("Env (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseHeader(t *testing.T) {
	for _, tc := range []struct {
		name     string
		output   string
		want     Response
		wantBody string
		wantErr  string // substring; "" means success
	}{{
		name:     "content type",
		output:   "Content-Type: text/plain\n\nbody",
		want:     Response{Status: 200, Header: http.Header{"Content-Type": {"text/plain"}}},
		wantBody: "body",
	}, {
		name:     "CRLF, status with reason, repeated field, hop-by-hop dropped",
		output:   "Status: 404 Not Found\r\nx-a: 1\r\nX-A:2\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n\r\nrest",
		want:     Response{Status: 404, Header: http.Header{"X-A": {"1", "2"}}},
		wantBody: "\r\nrest",
	}, {
		name:   "location without status is a redirect",
		output: "Location: https://example.com/\n\n",
		want:   Response{Status: 302, Header: http.Header{"Location": {"https://example.com/"}}},
	}, {
		name:   "location with status",
		output: "Location: /x\nStatus: 301\n\n",
		want:   Response{Status: 301, Header: http.Header{"Location": {"/x"}}},
	}, {
		name:   "status alone",
		output: "Status: 204\n\n",
		want:   Response{Status: 204, Header: http.Header{}},
	},
		{name: "no output", output: "", wantErr: "no output"},
		{name: "ends in the header", output: "Content-Type: text/plain\n", wantErr: "output ended inside the header section"},
		{name: "ends without newline", output: "Content-Type: text/plain", wantErr: "output ended inside the header section"},
		{name: "no field", output: "\nbody", wantErr: "no header field"},
		{name: "not a field", output: "hello world\n\n", wantErr: `line "hello world" is not a header field`},
		{name: "bad name", output: "Bad Name: x\n\n", wantErr: "is not a header field"},
		{name: "bad value", output: "X: a\x01b\n\n", wantErr: "invalid value"},
		{name: "status not a number", output: "Status: abc\n\n", wantErr: `bad Status "abc"`},
		{name: "status out of range", output: "Status: 99\n\n", wantErr: "bad Status"},
		{name: "status 1xx", output: "Status: 101\n\n", wantErr: "bad Status"},
		{name: "two statuses", output: "Status: 200\nStatus: 500\n\n", wantErr: "more than one Status"},
		{name: "line too long", output: "X: " + strings.Repeat("a", MaxHeaderLine) + "\n\n", wantErr: "header line longer than"},
		{name: "too many fields", output: strings.Repeat("X: 1\n", MaxHeaders+1) + "\n", wantErr: "more than 100 header fields"},
		{name: "section too long", output: strings.Repeat("X: "+strings.Repeat("a", 1000)+"\n", 70) + "\n", wantErr: "header section longer than"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			br := bufio.NewReaderSize(strings.NewReader(tc.output), MaxHeaderLine)
			got, err := ParseHeader(br)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !errors.Is(err, ErrMalformed) {
					t.Fatalf("got error %v, want one with %q wrapping ErrMalformed", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("ParseHeader (-want +got):\n%s", diff)
			}
			body, _ := io.ReadAll(br)
			if string(body) != tc.wantBody {
				t.Errorf("got body %q, want %q", body, tc.wantBody)
			}
		})
	}
}

func FuzzParseHeader(f *testing.F) {
	for _, s := range []string{
		"Content-Type: text/plain\n\nbody",
		"Status: 404 Not Found\r\nX: 1\r\n\r\n",
		"Location: /\n\n",
		"garbage",
		"",
		"\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, output []byte) {
		br := bufio.NewReaderSize(strings.NewReader(string(output)), MaxHeaderLine)
		resp, err := ParseHeader(br)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
			return
		}
		if resp.Status < 200 || resp.Status > 599 {
			t.Fatalf("status %d", resp.Status)
		}
		n := 0
		for k, vs := range resp.Header {
			if k == "Status" || k == "Transfer-Encoding" || k == "Connection" {
				t.Fatalf("header %s kept", k)
			}
			n += len(vs)
		}
		if n > MaxHeaders {
			t.Fatalf("%d header fields", n)
		}
		// What is left of the output is the body, whole.
		rest, _ := io.ReadAll(br)
		if !strings.HasSuffix(string(output), string(rest)) || len(output)-len(rest) > MaxHeaderBytes {
			t.Fatalf("body %q is not the end of the output, or the header is too long", rest)
		}
	})
}

func FuzzEnv(f *testing.F) {
	f.Add("X-Test", "value", "x-test", "/p?q=1", "/p")
	f.Add("Proxy", "http://evil", "proxy", "/", "")
	f.Add("X_A", "a\x00b", "X-A", "/a/b", "/b")
	f.Fuzz(func(t *testing.T, name, value, name2, target, pathInfo string) {
		r := httptest.NewRequest(http.MethodGet, "http://h/", nil)
		if u, err := r.URL.Parse(target); err == nil {
			r.URL = u
		}
		r.Header[name] = []string{value, value}
		r.Header[name2] = []string{value}
		env := Env(r, pathInfo, []string{"BASE=1"})
		seen := map[string]bool{}
		for _, kv := range env {
			k, v, ok := strings.Cut(kv, "=")
			if !ok || k == "" || strings.ContainsFunc(v, isCtl) {
				t.Fatalf("bad entry %q", kv)
			}
			if seen[k] {
				t.Fatalf("%s twice in %q", k, env)
			}
			seen[k] = true
			if k == "HTTP_PROXY" {
				t.Fatalf("HTTP_PROXY set from a request header: %q", env)
			}
		}
		want := []string{"REQUEST_METHOD", "QUERY_STRING", "BASE"}
		if !strings.ContainsFunc(pathInfo, isCtl) {
			want = append(want, "PATH_INFO")
		}
		for _, k := range want {
			if !seen[k] {
				t.Fatalf("no %s in %q", k, env)
			}
		}
	})
}
