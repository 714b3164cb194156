package e2e

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	statsv1alpha1 "k8s.io/kubelet/pkg/apis/stats/v1alpha1"

	"github.com/edgefabric/edgefabric/test/fabrictest"
)

// TestKubeletAuth: the kubelet API of a node (its own port) and the shared
// port answer only who the API server vouches for and authorizes, while
// the API server's own node proxy, by its kubelet client certificate, still
// gets through.
func TestKubeletAuth(t *testing.T) {
	// The API server's node proxy refuses loopback addresses: the kubelet
	// API listens on one of the machine's other addresses if it has one.
	host, sharedPort := "127.0.0.1", ""
	var opts []fabrictest.FabricOption
	if ip := nonLoopbackIP(); ip != "" {
		l, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		l.Close()
		host, sharedPort, _ = net.SplitHostPort(addr)
		opts = append(opts, fabrictest.WithProviderArgs("--kubelet-listen", addr, "--node-ip", ip))
	}
	f := startFabric(t, 1, opts...)
	if sharedPort == "" {
		sharedPort = f.KubeletPort
	}
	node := f.WaitNode(fabrictest.NodeReady)
	nodePort := fmt.Sprint(node.Status.DaemonEndpoints.KubeletEndpoint.Port)
	if nodePort == sharedPort {
		t.Fatalf("node publishes the shared port %s, not one of its own", nodePort)
	}
	ctx := t.Context()
	cs := f.Env.Client

	// A ServiceAccount with no rights, and one that may read the stats and
	// pods (proxy) of this node only.
	token := func(sa string) string {
		t.Helper()
		if _, err := cs.CoreV1().ServiceAccounts(namespace).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: sa}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		tr, err := cs.CoreV1().ServiceAccounts(namespace).CreateToken(ctx, sa, &authenticationv1.TokenRequest{}, metav1.CreateOptions{})
		if err != nil {
			t.Fatalf("token of %s: %v", sa, err)
		}
		return tr.Status.Token
	}
	nobody, reader := token("nobody"), token("node-reader")
	if _, err := cs.RbacV1().ClusterRoles().Create(ctx, &rbacv1.ClusterRole{
		ObjectMeta: metav1.ObjectMeta{Name: "e2e-node-reader"},
		Rules: []rbacv1.PolicyRule{{
			APIGroups: []string{""}, Resources: []string{"nodes/proxy", "nodes/stats"},
			ResourceNames: []string{nodeName}, Verbs: []string{"get"},
		}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "e2e-node-reader"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "e2e-node-reader"},
		Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Name: "node-reader", Namespace: namespace}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	caPEM, err := os.ReadFile(filepath.Join(f.StateDir, "ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(caPEM)
	plain := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}}
	stranger := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{
		RootCAs: roots, Certificates: []tls.Certificate{selfSignedClient(t, "stranger", "system:masters")},
	}}}
	t.Cleanup(plain.CloseIdleConnections)
	t.Cleanup(stranger.CloseIdleConnections)

	tests := []struct {
		name         string
		client       *http.Client
		port, method string
		path, token  string
		wantCode     int
		wantBody     string
	}{
		{"no credentials", plain, nodePort, http.MethodGet, "/pods", "", http.StatusUnauthorized, "Unauthorized"},
		{"no credentials exec", plain, nodePort, http.MethodPost, "/exec/" + namespace + "/x/app?command=id&output=1", "", http.StatusUnauthorized, "Unauthorized"},
		{"no credentials shared port", plain, sharedPort, http.MethodGet, "/stats/summary", "", http.StatusUnauthorized, "Unauthorized"},
		{"unknown token", plain, nodePort, http.MethodGet, "/pods", "not-a-token", http.StatusUnauthorized, "Unauthorized"},
		{"certificate of another CA", stranger, nodePort, http.MethodGet, "/pods", "", http.StatusUnauthorized, "Unauthorized"},
		{"account without rights", plain, nodePort, http.MethodGet, "/pods", nobody, http.StatusForbidden,
			"Forbidden (user=system:serviceaccount:" + namespace + ":nobody, verb=get, resource=nodes, subresource(s)=[pods proxy], node=" + nodeName + ")"},
		{"account without rights exec", plain, nodePort, http.MethodPost, "/exec/" + namespace + "/x/app?command=id&output=1", nobody, http.StatusForbidden, "subresource(s)=[proxy]"},
		{"account without rights stats", plain, nodePort, http.MethodGet, "/stats/summary", nobody, http.StatusForbidden, "subresource(s)=[stats]"},
		{"reader pods", plain, nodePort, http.MethodGet, "/pods", reader, http.StatusOK, `"kind":"PodList"`},
		{"reader stats", plain, nodePort, http.MethodGet, "/stats/summary", reader, http.StatusOK, `"nodeName":"` + nodeName + `"`},
		{"reader metrics", plain, nodePort, http.MethodGet, "/metrics/resource", reader, http.StatusForbidden, "subresource(s)=[metrics]"},
		{"reader exec", plain, nodePort, http.MethodPost, "/exec/" + namespace + "/x/app?command=id&output=1", reader, http.StatusForbidden, "verb=create"},
		{"reader on the shared port", plain, sharedPort, http.MethodGet, "/pods", reader, http.StatusForbidden, "node=<all nodes>"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequestWithContext(t.Context(), tt.method, "https://"+net.JoinHostPort(host, tt.port)+tt.path, nil)
			if err != nil {
				t.Fatal(err)
			}
			if tt.token != "" {
				req.Header.Set("Authorization", "Bearer "+tt.token)
			}
			resp, err := tt.client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			_ = resp.Body.Close()
			if resp.StatusCode != tt.wantCode || !strings.Contains(string(body), tt.wantBody) {
				t.Errorf("%s %s: got %d %q, want %d with %q", tt.method, tt.path, resp.StatusCode, strings.TrimSpace(string(body)), tt.wantCode, tt.wantBody)
			}
		})
	}

	// What the guard costs, for the report (no assertion: the machine is
	// shared): a token and a decision already cached against a fresh
	// account's first request (TokenReview and SubjectAccessReview).
	timeGet := func(tok string) time.Duration {
		t.Helper()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+net.JoinHostPort(host, nodePort)+"/stats/summary", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		start := time.Now()
		resp, err := plain.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		return time.Since(start)
	}
	var cached time.Duration
	const n = 20
	for range n {
		cached += timeGet(reader)
	}
	t.Logf("GET /stats/summary with a cached token and decision: %s on average over %d; a new account's first request (TokenReview and SubjectAccessReview, denied): %s",
		cached/n, n, timeGet(token("fresh")))

	// The API server's node proxy authenticates with its kubelet client
	// certificate (kubectl top, metrics-server, kubectl logs and exec).
	if host == "127.0.0.1" {
		t.Skip("the machine has no address but loopback, which the API server does not proxy to")
	}
	out, err := f.Kubectl("get", "--raw", "/api/v1/nodes/"+nodeName+"/proxy/stats/summary")
	if err != nil {
		t.Fatalf("node proxy /stats/summary: %v", err)
	}
	var sum statsv1alpha1.Summary
	if err := json.Unmarshal([]byte(out), &sum); err != nil || sum.Node.NodeName != nodeName {
		t.Errorf("node proxy /stats/summary: got node %q, %v in %q", sum.Node.NodeName, err, fabrictest.Tail(out, 5))
	}
	if out, err := f.Kubectl("get", "--raw", "/api/v1/nodes/"+nodeName+"/proxy/pods"); err != nil || !strings.Contains(out, `"PodList"`) {
		t.Errorf("node proxy /pods: got %q, %v", fabrictest.Tail(out, 5), err)
	}
	f.CheckAlive()
}

// selfSignedClient is a client certificate for user and group that no CA of
// the cluster signed.
func selfSignedClient(t *testing.T, user, group string) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: user, Organization: []string{group}},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		IsCA:         true, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// TestKubeletAuthOff: --kubelet-auth=false serves the kubelet API to anyone,
// for local debugging, on the node's port and the shared one.
func TestKubeletAuthOff(t *testing.T) {
	f := startFabric(t, 1, fabrictest.WithProviderArgs("--kubelet-auth=false"))
	node := f.WaitNode(fabrictest.NodeReady)
	caPEM, err := os.ReadFile(filepath.Join(f.StateDir, "ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(caPEM)
	c := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}}
	t.Cleanup(c.CloseIdleConnections)
	for _, port := range []string{fmt.Sprint(node.Status.DaemonEndpoints.KubeletEndpoint.Port), f.KubeletPort} {
		resp, err := c.Get("https://127.0.0.1:" + port + "/pods")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"kind":"PodList"`) {
			t.Errorf("GET /pods on port %s without credentials: got %d %.200s, want 200 and the pods", port, resp.StatusCode, body)
		}
	}
	if out := f.Provider().Output(); !strings.Contains(out, "kubelet API authentication and authorization are off") {
		t.Errorf("the provider does not warn that the kubelet API is open; its output:\n%s", fabrictest.Tail(out, 20))
	}
}
