package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// The release the local fabric installs; the chart names its objects after it.
const (
	chartRelease = "edgefabric"
	// providerSA is the chart's ServiceAccount, whose identity the provider runs with.
	providerSA = chartRelease
)

// buildHelm runs hack/build-helm.sh, which prints the path of the helm binary
// at once when it is cached and builds it first otherwise.
func buildHelm(ctx context.Context, root string) (string, error) {
	script := filepath.Join(root, "hack", "build-helm.sh")
	cmd := exec.CommandContext(ctx, "bash", script)
	cmd.Dir = root
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("%s: %w", script, err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	return strings.TrimSpace(lines[len(lines)-1]), nil
}

// installChart installs deploy/helm/edgefabric with no provider replicas, as a
// user would into an existing cluster: the ServiceAccount, its RBAC, the
// Services, the RuntimeClasses and the account's bootstrap token. It returns
// the token the chart generated.
func (f *fabric) installChart(ctx context.Context, client kubernetes.Interface, kubeconfig string) (string, error) {
	cfg := f.cfg
	chart := filepath.Join(cfg.Root, "deploy", "helm", "edgefabric")
	f.log.Info("installing chart", "chart", chart, "release", chartRelease, "namespace", systemNamespace)
	cmd := exec.CommandContext(ctx, cfg.HelmBin, "install", chartRelease, chart,
		"--kubeconfig", kubeconfig, "--namespace", systemNamespace, "--create-namespace",
		"--set", "replicas=0",
		"--set", "hub.service.type=ClusterIP",
		"--set", "bootstrapToken.account="+cfg.Account,
		// Tokens without an expiration last the provider's --token-ttl
		// (24 h) from their creation: the demo's lasts a month.
		"--set", "bootstrapToken.expiration="+time.Now().Add(30*24*time.Hour).UTC().Format(time.RFC3339),
	)
	home := filepath.Join(f.dirs.root, "helm")
	cmd.Env = append(os.Environ(), "HELM_CACHE_HOME="+home, "HELM_CONFIG_HOME="+home, "HELM_DATA_HOME="+home)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("helm install: %w: %s", err, strings.TrimSpace(stderr.String()))
	}
	name := chartRelease + "-token-" + cfg.Account
	s, err := client.CoreV1().Secrets(systemNamespace).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return "", fmt.Errorf("read the chart's bootstrap token: %w", err)
	}
	return string(s.Data["token"]), nil
}

// providerKubeconfig writes a kubeconfig with a token of the chart's
// ServiceAccount, so the provider runs with exactly the chart's RBAC.
func (f *fabric) providerKubeconfig(ctx context.Context, client kubernetes.Interface, server string, ca []byte) (string, error) {
	// A week: longer than any local fabric lives.
	ttl := int64(7 * 24 * 3600)
	tr, err := client.CoreV1().ServiceAccounts(systemNamespace).CreateToken(ctx, providerSA, &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: &ttl},
	}, metav1.CreateOptions{})
	if err != nil {
		return "", fmt.Errorf("token for service account %s/%s: %w", systemNamespace, providerSA, err)
	}
	const name = "edgefabric-local"
	kc := clientcmdapi.NewConfig()
	kc.Clusters[name] = &clientcmdapi.Cluster{Server: server, CertificateAuthorityData: ca}
	kc.AuthInfos[providerSA] = &clientcmdapi.AuthInfo{Token: tr.Status.Token}
	kc.Contexts[name] = &clientcmdapi.Context{Cluster: name, AuthInfo: providerSA, Namespace: systemNamespace}
	kc.CurrentContext = name
	path := filepath.Join(f.dirs.provider, "kubeconfig")
	return path, clientcmd.WriteToFile(*kc, path)
}
