package e2e

import (
	"crypto/x509"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/edgefabric/edgefabric/test/fabrictest"

	corev1 "k8s.io/api/core/v1"

	"github.com/edgefabric/edgefabric/pkg/agent/store"
	"github.com/edgefabric/edgefabric/pkg/identity"
)

// testBootstrap joins a new device with the account's token, checks the
// certificate it was given, and restarts it without a token: it keeps using
// the certificate.
func testBootstrap(f *fabrictest.Fabric) {
	t := f.T()
	before := 2 // dev-0 and dev-1
	f.WaitNode(func(n *corev1.Node) bool { return fabrictest.ReadyDevices(n) == before })
	a := f.StartAgent("joiner")
	f.WaitNode(func(n *corev1.Node) bool {
		return fabrictest.ReadyDevices(n) == before+1 && strings.Contains(conditionMessage(n), "joiner")
	})
	f.WaitLog(a.Proc, "connected to hub", 1, 10*time.Second)
	if fabrictest.LogLine(a.Output(), "joined the fabric", "device=joiner", "account=e2e") == "" {
		t.Errorf("agent log does not say it joined as joiner of e2e:\n%s", fabrictest.Tail(a.Output(), 20))
	}
	if fabrictest.LogLine(f.Provider().Output(), "device bootstrapped", "device=joiner", "account=e2e") == "" {
		t.Errorf("provider log does not say it bootstrapped joiner of e2e")
	}

	// The certificate in the agent's store names the device and the account
	// and is signed by the fabric's CA for client authentication.
	a.Stop(t, syscall.SIGTERM)
	st, err := store.Open(filepath.Join(a.DataDir, "agent.db"))
	if err != nil {
		t.Fatal(err)
	}
	id, err := st.Identity()
	st.Close()
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(id.CertDER)
	if err != nil {
		t.Fatalf("stored certificate: %v", err)
	}
	d, err := identity.FromCertificate(cert)
	if err != nil || d.ID != "joiner" || d.Account != account {
		t.Errorf("certificate names %+v (%v), want device joiner of account %s", d, err, account)
	}
	caPEM, err := os.ReadFile(filepath.Join(f.StateDir, "ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(caPEM)
	if _, err := cert.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("device certificate does not verify against the fabric CA for client auth: %v", err)
	}
	if left := time.Until(cert.NotAfter); left <= 0 || left > 25*time.Hour {
		t.Errorf("certificate expires in %s, want a short-lived certificate (24h)", left)
	}

	// Without a token it joins with the certificate it has.
	f.WaitNode(func(n *corev1.Node) bool { return fabrictest.ReadyDevices(n) == before })
	f.RestartAgent(a, replaceFlag(a.Args, "--token-file", "")...)
	f.WaitNode(func(n *corev1.Node) bool {
		return fabrictest.ReadyDevices(n) == before+1 && strings.Contains(conditionMessage(n), "joiner")
	})
	f.WaitLog(a.Proc, "connected to hub", 1, 10*time.Second)
	if strings.Contains(a.Output(), `msg="joined the fabric"`) {
		t.Errorf("agent joined again, want it to use its certificate:\n%s", fabrictest.Tail(a.Output(), 10))
	}
	a.Stop(t, syscall.SIGTERM)
	f.Forget(a)
}

// testBootstrapRefused starts agents with a token no Secret has, with an
// expired one, and with the account's good token but the ID of an enrolled
// device (dev-0, running): each exits with an error naming the token and
// why, the provider logs the refusal, and dev-0 keeps its session.
func testBootstrapRefused(f *fabrictest.Fabric) {
	t := f.T()
	f.CreateToken("bootstrap-token-expired", "expired0123456789abcdef", account, time.Now().Add(-time.Hour).UTC().Format(time.RFC3339))
	for _, tc := range []struct {
		name, device, token, why string
	}{
		{"wrong-token", "wrong-token", "wrong0123456789abcdef", "unknown token"},
		{"expired-token", "expired-token", "expired0123456789abcdef", "token expired at"},
		{"impostor", "dev-0", f.Token, "a bootstrap token enrols new devices only"},
	} {
		dir := t.TempDir()
		args := replaceFlag(f.AgentArgs(tc.name, dir), "--token-file", f.TokenFile(tc.token))
		a := f.StartAgentArgs(tc.name, dir, replaceFlag(args, "--device-id", tc.device)...)
		select {
		case <-a.Done():
		case <-time.After(60 * time.Second):
			a.Stop(t, syscall.SIGKILL)
			t.Fatalf("agent %s with a refused token still runs after 60s:\n%s", tc.device, fabrictest.Tail(a.Output(), 20))
		}
		f.Forget(a)
		out := a.Output()
		if a.ExitCode() == 0 {
			t.Errorf("agent %s exited 0 after its token was refused", tc.device)
		}
		if !strings.Contains(out, `token \"`+tc.token[:6]) || !strings.Contains(out, "refused") || !strings.Contains(out, tc.why) {
			t.Errorf("agent %s: want an error naming token %s… and %q; got:\n%s", tc.device, tc.token[:6], tc.why, fabrictest.Tail(out, 10))
		}
		if l := fabrictest.LogLine(f.Provider().Output(), "bootstrap refused", "device="+tc.device, "token="+tc.token[:6]); !strings.Contains(l, tc.why) {
			t.Errorf("provider log: want a \"bootstrap refused\" line for %s naming token %s… and %q, got %q", tc.device, tc.token[:6], tc.why, l)
		}
	}
	if n := f.WaitNode(fabrictest.NodeReady); strings.Contains(conditionMessage(n), "-token") {
		t.Errorf("a refused device is on the node: %q", conditionMessage(n))
	}
	if dev0 := f.Agent("dev-0"); strings.Contains(dev0.Output(), "replaced by a newer session") {
		t.Errorf("the enrolled dev-0 lost its session to the impostor:\n%s", fabrictest.Tail(dev0.Output(), 10))
	}
}
