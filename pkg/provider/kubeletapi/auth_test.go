package kubeletapi

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apiserver/pkg/authentication/authenticator"
	"k8s.io/apiserver/pkg/authentication/user"
	"k8s.io/apiserver/pkg/authorization/authorizer"
)

func TestAttributes(t *testing.T) {
	tests := []struct {
		method, path string
		wantVerb     string
		wantSubs     []string
	}{
		{http.MethodGet, "/containerLogs/ns/pod/c", "get", []string{"proxy"}},
		{http.MethodPost, "/exec/ns/pod/c", "create", []string{"proxy"}},
		{http.MethodGet, "/exec/ns/pod/c", "get", []string{"proxy"}},
		{http.MethodPost, "/attach/ns/pod/c", "create", []string{"proxy"}},
		{http.MethodPost, "/portForward/ns/pod", "create", []string{"proxy"}},
		{http.MethodPost, "/run/ns/pod/c", "create", []string{"proxy"}},
		{http.MethodGet, "/pods", "get", []string{"pods", "proxy"}},
		{http.MethodGet, "/pods/", "get", []string{"pods", "proxy"}},
		{http.MethodGet, "/podsx", "get", []string{"proxy"}},
		{http.MethodGet, "/runningpods/", "get", []string{"pods", "proxy"}},
		{http.MethodGet, "/healthz", "get", []string{"healthz", "proxy"}},
		{http.MethodGet, "/configz", "get", []string{"configz", "proxy"}},
		{http.MethodGet, "/stats/summary", "get", []string{"stats"}},
		{http.MethodGet, "/stats", "get", []string{"stats"}},
		{http.MethodGet, "/statsx", "get", []string{"proxy"}},
		{http.MethodGet, "/metrics/resource", "get", []string{"metrics"}},
		{http.MethodGet, "/metrics", "get", []string{"metrics"}},
		{http.MethodGet, "/logs/syslog", "get", []string{"log"}},
		{http.MethodPost, "/checkpoint/ns/pod/c", "create", []string{"checkpoint"}},
		{http.MethodPut, "/x", "update", []string{"proxy"}},
		{http.MethodPatch, "/x", "patch", []string{"proxy"}},
		{http.MethodDelete, "/x", "delete", []string{"proxy"}},
		{http.MethodHead, "/x", "", []string{"proxy"}},
	}
	u := &user.DefaultInfo{Name: "alice"}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			r := httptest.NewRequest(tt.method, tt.path, nil)
			attrs := Attributes("edge-a", u, r)
			var subs []string
			for _, a := range attrs {
				subs = append(subs, a.Subresource)
				if a.Verb != tt.wantVerb {
					t.Errorf("verb: got %q, want %q", a.Verb, tt.wantVerb)
				}
				if a.Resource != "nodes" || a.Name != "edge-a" || a.APIVersion != "v1" || !a.ResourceRequest || a.User != u || a.Path != tt.path {
					t.Errorf("attributes: got %+v", a)
				}
			}
			if diff := cmp.Diff(tt.wantSubs, subs); diff != "" {
				t.Errorf("subresources (-want +got):\n%s", diff)
			}
		})
	}
}

// fakeAuth authenticates "Bearer <user>" as <user>, "Bearer error" as an
// error, and nothing else; it allows "<user> <verb> nodes/<sub> <node>"
// found in allow and fails the review for user "broken".
type fakeAuth struct{ allow map[string]bool }

func (f fakeAuth) AuthenticateRequest(r *http.Request) (*authenticator.Response, bool, error) {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	switch {
	case !ok:
		return nil, false, nil
	case tok == "error":
		return nil, false, errors.New("token review failed")
	}
	return &authenticator.Response{User: &user.DefaultInfo{Name: tok}}, true, nil
}

func (f fakeAuth) Authorize(_ context.Context, a authorizer.Attributes) (authorizer.Decision, string, error) {
	if a.GetUser().GetName() == "broken" {
		return authorizer.DecisionNoOpinion, "", errors.New("subject access review failed")
	}
	if f.allow[a.GetUser().GetName()+" "+a.GetVerb()+" nodes/"+a.GetSubresource()+" "+a.GetName()] {
		return authorizer.DecisionAllow, "", nil
	}
	return authorizer.DecisionNoOpinion, "", nil
}

func TestGuard(t *testing.T) {
	fa := fakeAuth{allow: map[string]bool{
		"alice create nodes/proxy edge-a": true,
		"alice get nodes/stats edge-a":    true,
		"bob get nodes/proxy edge-a":      true, // /pods falls back to proxy
		"carol get nodes/pods edge-a":     true,
		"root get nodes/proxy ":           true, // all nodes
	}}
	g := newGuard(fa, authorizer.AuthorizerFunc(fa.Authorize), slog.New(slog.DiscardHandler))
	tests := []struct {
		name, node, method, path, token string
		wantCode                        int
		wantBody                        string
	}{
		{"no credentials", "edge-a", http.MethodPost, "/exec/ns/p/c", "", http.StatusUnauthorized, "Unauthorized"},
		{"review error", "edge-a", http.MethodPost, "/exec/ns/p/c", "error", http.StatusUnauthorized, "token review failed"},
		{"exec allowed", "edge-a", http.MethodPost, "/exec/ns/p/c", "alice", http.StatusOK, "served"},
		{"exec on another node", "edge-b", http.MethodPost, "/exec/ns/p/c", "alice", http.StatusForbidden, "Forbidden (user=alice, verb=create, resource=nodes, subresource(s)=[proxy], node=edge-b)"},
		{"stats allowed", "edge-a", http.MethodGet, "/stats/summary", "alice", http.StatusOK, "served"},
		{"logs need get", "edge-a", http.MethodGet, "/containerLogs/ns/p/c", "alice", http.StatusForbidden, "subresource(s)=[proxy]"},
		{"metrics not granted", "edge-a", http.MethodGet, "/metrics/resource", "alice", http.StatusForbidden, "subresource(s)=[metrics]"},
		{"pods by proxy", "edge-a", http.MethodGet, "/pods", "bob", http.StatusOK, "served"},
		{"pods by pods", "edge-a", http.MethodGet, "/pods", "carol", http.StatusOK, "served"},
		{"pods only pods", "edge-a", http.MethodGet, "/containerLogs/ns/p/c", "carol", http.StatusForbidden, "Forbidden"},
		{"shared port needs all nodes", AllNodes, http.MethodGet, "/pods", "bob", http.StatusForbidden, "node=<all nodes>"},
		{"shared port all nodes", AllNodes, http.MethodGet, "/pods", "root", http.StatusOK, "served"},
		{"authorizer error", "edge-a", http.MethodGet, "/pods", "broken", http.StatusInternalServerError, "subject access review failed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := g.Wrap(tt.node, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "served") }))
			r := httptest.NewRequest(tt.method, tt.path, nil)
			if tt.token != "" {
				r.Header.Set("Authorization", "Bearer "+tt.token)
			}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			if w.Code != tt.wantCode || !strings.Contains(w.Body.String(), tt.wantBody) {
				t.Errorf("got %d %q, want %d with %q", w.Code, w.Body.String(), tt.wantCode, tt.wantBody)
			}
		})
	}
}

func TestNilGuardServesEveryone(t *testing.T) {
	var g *Guard
	h := g.Wrap("edge-a", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "served") }))
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(http.MethodPost, "/exec/ns/p/c", nil))
	if w.Code != http.StatusOK {
		t.Errorf("got %d, want 200", w.Code)
	}
}
