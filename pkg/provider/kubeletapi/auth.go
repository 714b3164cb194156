package kubeletapi

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"k8s.io/apiserver/pkg/authentication/authenticator"
	"k8s.io/apiserver/pkg/authentication/authenticatorfactory"
	"k8s.io/apiserver/pkg/authentication/user"
	"k8s.io/apiserver/pkg/authorization/authorizer"
	"k8s.io/apiserver/pkg/authorization/authorizerfactory"
	"k8s.io/apiserver/pkg/server/dynamiccertificates"
	"k8s.io/apiserver/pkg/server/options"
	"k8s.io/client-go/kubernetes"
)

// GuardConfig configures a Guard. The zero value of each field is documented.
type GuardConfig struct {
	// ClientCA is a PEM bundle of the CAs whose client certificates are
	// accepted (the API server's --kubelet-client-certificate is signed by
	// one of them); a verified certificate's CN is the user and its O the
	// groups. Empty: client certificates are not accepted, only bearer tokens.
	ClientCA []byte
	// Client sends the TokenReviews (bearer tokens) and SubjectAccessReviews
	// (every request). Required.
	Client kubernetes.Interface
	// TokenCacheTTL is how long a TokenReview's answer is reused. Zero means
	// 2 minutes (the kubelet's default).
	TokenCacheTTL time.Duration
	// AllowCacheTTL and DenyCacheTTL are how long a SubjectAccessReview's
	// answer is reused. Zero means 5 minutes and 30 seconds (the kubelet's
	// defaults).
	AllowCacheTTL, DenyCacheTTL time.Duration
}

// Guard authenticates and authorizes requests to the kubelet API as a
// kubelet in webhook mode does: by client certificate or by a bearer token
// the API server reviews (TokenReview), then by a SubjectAccessReview for the
// node subresource the path maps to (see Attributes). It is safe for
// concurrent use; one Guard serves every port, so the ports share its caches.
type Guard struct {
	authn authenticator.Request
	authz authorizer.Authorizer
	log   *slog.Logger
}

// NewGuard returns a Guard for cfg. It does not contact the API server.
func NewGuard(cfg GuardConfig, log *slog.Logger) (*Guard, error) {
	if cfg.Client == nil {
		return nil, errors.New("kubelet API auth: a Kubernetes client is required")
	}
	if cfg.TokenCacheTTL == 0 {
		cfg.TokenCacheTTL = 2 * time.Minute
	}
	if cfg.AllowCacheTTL == 0 {
		cfg.AllowCacheTTL = 5 * time.Minute
	}
	if cfg.DenyCacheTTL == 0 {
		cfg.DenyCacheTTL = 30 * time.Second
	}
	authnCfg := authenticatorfactory.DelegatingAuthenticatorConfig{
		TokenAccessReviewClient: cfg.Client.AuthenticationV1(),
		WebhookRetryBackoff:     options.DefaultAuthWebhookRetryBackoff(),
		CacheTTL:                cfg.TokenCacheTTL,
	}
	if len(cfg.ClientCA) > 0 {
		ca, err := dynamiccertificates.NewStaticCAContent("kubelet-client-ca", cfg.ClientCA)
		if err != nil {
			return nil, fmt.Errorf("kubelet API client CA: %w", err)
		}
		authnCfg.ClientCertificateCAContentProvider = ca
	}
	authn, _, err := authnCfg.New()
	if err != nil {
		return nil, fmt.Errorf("kubelet API authenticator: %w", err)
	}
	authz, err := authorizerfactory.DelegatingAuthorizerConfig{
		SubjectAccessReviewClient: cfg.Client.AuthorizationV1(),
		AllowCacheTTL:             cfg.AllowCacheTTL,
		DenyCacheTTL:              cfg.DenyCacheTTL,
		WebhookRetryBackoff:       options.DefaultAuthWebhookRetryBackoff(),
	}.New()
	if err != nil {
		return nil, fmt.Errorf("kubelet API authorizer: %w", err)
	}
	return &Guard{authn: authn, authz: authz, log: log}, nil
}

// newGuard builds a Guard over given parts, for tests.
func newGuard(authn authenticator.Request, authz authorizer.Authorizer, log *slog.Logger) *Guard {
	return &Guard{authn: authn, authz: authz, log: log}
}

// AllNodes is the node name the provider's shared kubelet API port
// authorizes against: it answers for every node of the provider, so a
// request there needs the right on nodes/<subresource> without a name, which
// RBAC grants only by a rule that names no resourceNames (all nodes).
const AllNodes = ""

// Wrap returns h behind g for the kubelet API of node (AllNodes for the
// shared port). A nil Guard returns h: the API is served to anyone.
func (g *Guard) Wrap(node string, h http.Handler) http.Handler {
	if g == nil {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if g.allow(w, r, node) {
			h.ServeHTTP(w, r)
		}
	})
}

// allow authenticates and authorizes r and, if it may not pass, answers it
// (401, 403 or 500) and returns false.
func (g *Guard) allow(w http.ResponseWriter, r *http.Request, node string) bool {
	ctx := r.Context()
	resp, ok, err := g.authn.AuthenticateRequest(r)
	if err != nil || !ok {
		g.log.Debug("kubelet API request not authenticated", "path", r.URL.Path, "remote", r.RemoteAddr, "err", err)
		msg := "Unauthorized: present a client certificate signed by the kubelet client CA or a bearer token the API server accepts"
		if err != nil {
			msg += " (" + err.Error() + ")"
		}
		http.Error(w, msg, http.StatusUnauthorized)
		return false
	}
	attrs := Attributes(node, resp.User, r)
	var subs []string
	for _, a := range attrs {
		subs = append(subs, a.Subresource)
		decision, _, err := g.authz.Authorize(ctx, a)
		if err != nil {
			g.log.Warn("kubelet API authorization failed", "user", a.User.GetName(), "verb", a.Verb, "subresource", a.Subresource, "node", node, "err", err)
			http.Error(w, fmt.Sprintf("Authorization error (user=%s, verb=%s, resource=nodes, subresource=%s): %v",
				a.User.GetName(), a.Verb, a.Subresource, err), http.StatusInternalServerError)
			return false
		}
		if decision == authorizer.DecisionAllow {
			return true
		}
	}
	name := node
	if name == AllNodes {
		name = "<all nodes>"
	}
	g.log.Debug("kubelet API request forbidden", "user", resp.User.GetName(), "verb", attrs[0].Verb, "subresources", subs, "node", name, "path", r.URL.Path)
	http.Error(w, fmt.Sprintf("Forbidden (user=%s, verb=%s, resource=nodes, subresource(s)=%v, node=%s)",
		resp.User.GetName(), attrs[0].Verb, subs, name), http.StatusForbidden)
	return false
}

// Attributes are what a request to the kubelet API of node asks for, as the
// kubelet maps them: resource nodes, name node, the verb from the HTTP method
// (GET get, POST create, PUT update, PATCH patch, DELETE delete) and the
// subresource from the path: /stats stats, /metrics metrics, /logs log,
// /checkpoint checkpoint, everything else (exec, attach, port-forward,
// containerLogs, run) proxy. /pods and /runningpods ask for pods first and
// fall back to proxy, /healthz healthz then proxy, /configz configz then
// proxy (the kubelet's fine-grained authorization): the request passes if
// any of them is allowed.
func Attributes(node string, u user.Info, r *http.Request) []authorizer.AttributesRecord {
	verb := ""
	switch r.Method {
	case http.MethodGet:
		verb = "get"
	case http.MethodPost:
		verb = "create"
	case http.MethodPut:
		verb = "update"
	case http.MethodPatch:
		verb = "patch"
	case http.MethodDelete:
		verb = "delete"
	}
	p := r.URL.Path
	var subs []string
	switch {
	case isSubpath(p, "/pods"), isSubpath(p, "/runningpods"):
		subs = append(subs, "pods")
	case isSubpath(p, "/healthz"):
		subs = append(subs, "healthz")
	case isSubpath(p, "/configz"):
		subs = append(subs, "configz")
	}
	switch {
	case isSubpath(p, "/stats"):
		subs = append(subs, "stats")
	case isSubpath(p, "/metrics"):
		subs = append(subs, "metrics")
	case isSubpath(p, "/logs"):
		// "log", as pods/log.
		subs = append(subs, "log")
	case isSubpath(p, "/checkpoint"):
		subs = append(subs, "checkpoint")
	default:
		subs = append(subs, "proxy")
	}
	attrs := make([]authorizer.AttributesRecord, 0, len(subs))
	for _, s := range subs {
		attrs = append(attrs, authorizer.AttributesRecord{
			User:            u,
			Verb:            verb,
			APIVersion:      "v1",
			Resource:        "nodes",
			Subresource:     s,
			Name:            node,
			ResourceRequest: true,
			Path:            p,
		})
	}
	return attrs
}

// isSubpath reports whether p is path or below it (the kubelet's rule).
func isSubpath(p, path string) bool {
	return p == path || (strings.HasPrefix(p, path) && p[len(path)] == '/')
}
