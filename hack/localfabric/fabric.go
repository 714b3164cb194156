package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/registry"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	efv1 "github.com/edgefabric/edgefabric/pkg/apis/edgefabric/v1alpha1"
)

// systemNamespace is the namespace the fabric creates for the provider.
const systemNamespace = "edgefabric-system"

// fabricDirs are the directories under Config.Dir.
type fabricDirs struct {
	root, logs, pids, pki, etcd, bin, provider, agents, registry string
}

func dirsOf(root string) fabricDirs {
	return fabricDirs{
		root:     root,
		logs:     filepath.Join(root, "logs"),
		pids:     filepath.Join(root, "pids"),
		pki:      filepath.Join(root, "pki"),
		etcd:     filepath.Join(root, "etcd"),
		bin:      filepath.Join(root, "bin"),
		provider: filepath.Join(root, "provider"),
		agents:   filepath.Join(root, "agents"),
		registry: filepath.Join(root, "registry"),
	}
}

// Info is what a running fabric tells its users; it is also written as the env file.
type Info struct {
	Kubeconfig string // admin kubeconfig
	Kubectl    string // kubectl of the control plane's version
	APIServer  string // https://127.0.0.1:<port>
	Registry   string // <edge host>:<port>, plain HTTP; the edge host is 127.0.0.1, or 10.77.1.1 with LANs
	Hub        string // <edge host>:<port>; "" with ControlPlaneOnly
	HubCA      string // the provider's CA certificate; "" with ControlPlaneOnly
	Token      string // the demo account's bootstrap token
	AgentBin   string // the agent binary
	Account    string
	EnvFile    string
	Agents     int  // how many agents run
	LANs       int  // how many LANs they are spread over
	Loopback   bool // the agents run on loopback, not in network namespaces
	// ProviderKubeconfig authenticates as the chart's ServiceAccount: the
	// provider runs with it, so every demo exercises the chart's RBAC.
	ProviderKubeconfig string
}

// fabric runs the local fabric's processes. It is driven by run, which returns only
// after everything it started has stopped.
type fabric struct {
	cfg  Config
	dirs fabricDirs
	log  *slog.Logger

	mu    sync.Mutex
	procs []*proc // in start order; stopped in reverse

	// exited receives processes that exit without being stopped.
	exited chan *proc
}

func newFabric(cfg Config, log *slog.Logger) *fabric {
	return &fabric{cfg: cfg, dirs: dirsOf(cfg.Dir), log: log, exited: make(chan *proc, 64)}
}

// prepare wipes the state of a previous fabric and creates the directories. It
// must run before anything opens a file under the fabric's directory.
func prepare(dir string) error {
	d := dirsOf(dir)
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	for _, p := range []string{d.logs, d.pids, d.pki, d.etcd, d.bin, d.provider, d.agents, d.registry} {
		if err := os.MkdirAll(p, 0o755); err != nil {
			return err
		}
	}
	return nil
}

// run starts the fabric, calls ready once it is up (the edge node Ready, or the
// control plane and registry with ControlPlaneOnly), then keeps it running until
// ctx ends, and tears it all down. Start-up must finish within cfg.ReadyTimeout.
// It returns nil when ctx ends after a successful start.
func (f *fabric) run(ctx context.Context, ready func(Info)) error {
	if !f.cfg.Loopback {
		defer teardownLANs() // after the processes in them have stopped
	}
	defer f.stopAll()

	startCtx, cancel := context.WithTimeout(ctx, f.cfg.ReadyTimeout)
	defer cancel()
	info, srv, err := f.start(startCtx)
	if srv != nil {
		defer func() {
			shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = srv.Shutdown(shutdownCtx)
		}()
	}
	if err != nil {
		if ctx.Err() != nil {
			return nil // interrupted while starting
		}
		return err
	}
	ready(info)

	for {
		select {
		case <-ctx.Done():
			f.log.Info("stopping fabric")
			return nil
		case p := <-f.exited:
			// Reported, not restarted: a crash is something to look at.
			f.log.Error("process exited unexpectedly", "name", p.name, "err", p.exitErr, "log", p.logPath, "tail", logTail(p.logPath, 10))
		}
	}
}

func (f *fabric) start(ctx context.Context) (Info, *http.Server, error) {
	cfg, d := f.cfg, f.dirs
	info := Info{Account: cfg.Account, AgentBin: cfg.AgentBin, EnvFile: filepath.Join(d.root, "env"), Agents: cfg.agentCount(), LANs: cfg.LANs, Loopback: cfg.Loopback}
	if cfg.ControlPlaneOnly {
		info.Agents = 0
	}

	pk, err := newPKI(d.pki)
	if err != nil {
		return info, nil, fmt.Errorf("create certificates: %w", err)
	}
	apiPort, err := pickPort("127.0.0.1", cfg.APIServerPort)
	if err != nil {
		return info, nil, err
	}
	info.APIServer = "https://127.0.0.1:" + strconv.Itoa(apiPort)
	if err := f.issueControlPlaneCerts(pk); err != nil {
		return info, nil, err
	}

	// etcd
	etcdPort, err := pickPort("127.0.0.1", 0)
	if err != nil {
		return info, nil, err
	}
	peerPort, err := pickPort("127.0.0.1", 0)
	if err != nil {
		return info, nil, err
	}
	etcdURL := "http://127.0.0.1:" + strconv.Itoa(etcdPort)
	peerURL := "http://127.0.0.1:" + strconv.Itoa(peerPort)
	f.log.Info("starting etcd", "url", etcdURL)
	etcd, err := f.startProc("etcd", filepath.Join(cfg.AssetsDir, "etcd"),
		"--name=local", "--data-dir="+d.etcd,
		"--listen-client-urls="+etcdURL, "--advertise-client-urls="+etcdURL,
		"--listen-peer-urls="+peerURL, "--initial-advertise-peer-urls="+peerURL,
		"--initial-cluster=local="+peerURL,
		// Loopback development cluster: throughput over durability.
		"--unsafe-no-fsync=true",
	)
	if err != nil {
		return info, nil, err
	}
	if err := etcd.waitHTTP(ctx, etcdURL+"/health", nil); err != nil {
		return info, nil, err
	}

	// kube-apiserver
	f.log.Info("starting kube-apiserver", "url", info.APIServer)
	apiServer, err := f.startProc("kube-apiserver", filepath.Join(cfg.AssetsDir, "kube-apiserver"),
		"--etcd-servers="+etcdURL,
		"--bind-address=127.0.0.1", "--secure-port="+strconv.Itoa(apiPort),
		// Loopback only: the kubernetes Service gets no endpoints, as loopback may not
		// be published there (and devices could not reach it anyway).
		"--advertise-address=127.0.0.1", "--endpoint-reconciler-type=none",
		"--cert-dir="+filepath.Join(d.pki, "apiserver-generated"),
		"--tls-cert-file="+pk.path("apiserver.crt"), "--tls-private-key-file="+pk.path("apiserver.key"),
		"--client-ca-file="+pk.path("ca.crt"),
		"--authorization-mode=RBAC",
		"--service-cluster-ip-range=10.0.0.0/24",
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file="+pk.path("sa.pub"),
		"--service-account-signing-key-file="+pk.path("sa.key"),
		"--allow-privileged=true",
		// How the API server reaches the provider's kubelet API for logs and exec:
		// by the node's InternalIP, as a client the provider can authenticate.
		"--kubelet-preferred-address-types=InternalIP,ExternalIP,Hostname",
		"--kubelet-client-certificate="+pk.path("apiserver-kubelet-client.crt"),
		"--kubelet-client-key="+pk.path("apiserver-kubelet-client.key"),
		"--profiling=false",
	)
	if err != nil {
		return info, nil, err
	}
	info.Kubeconfig = filepath.Join(d.root, "kubeconfig")
	if err := writeKubeconfig(info.Kubeconfig, info.APIServer, pk, "admin"); err != nil {
		return info, nil, err
	}
	restCfg, err := clientcmd.BuildConfigFromFlags("", info.Kubeconfig)
	if err != nil {
		return info, nil, err
	}
	restCfg.QPS, restCfg.Burst = 100, 200
	httpClient, err := rest.HTTPClientFor(restCfg)
	if err != nil {
		return info, nil, err
	}
	if err := apiServer.waitHTTP(ctx, info.APIServer+"/readyz", httpClient); err != nil {
		return info, nil, err
	}
	client, err := kubernetes.NewForConfig(restCfg)
	if err != nil {
		return info, nil, err
	}
	info.Kubectl = filepath.Join(d.bin, "kubectl")
	if err := os.Symlink(filepath.Join(cfg.AssetsDir, "kubectl"), info.Kubectl); err != nil {
		return info, nil, err
	}

	// kube-scheduler and kube-controller-manager, started together.
	scheduler, schedulerURL, err := f.startScheduler(pk, info.APIServer)
	if err != nil {
		return info, nil, err
	}
	controllers, controllersURL, err := f.startControllerManager(pk, info.APIServer)
	if err != nil {
		return info, nil, err
	}
	if err := scheduler.waitHTTP(ctx, schedulerURL, nil); err != nil {
		return info, nil, err
	}
	if err := controllers.waitHTTP(ctx, controllersURL, nil); err != nil {
		return info, nil, err
	}

	// With separate LANs, the agents reach the hub and the registry on the host's
	// address in LAN 1; otherwise everything is on loopback.
	if !cfg.Loopback {
		f.log.Info("creating LANs", "lans", cfg.LANs, "subnet", lanSubnet)
		if err := setupLANs(ctx, cfg.LANs, cfg.agentCount()); err != nil {
			return info, nil, fmt.Errorf("create LANs: %w", err)
		}
	}

	// The registry runs in this process.
	regPort, err := pickPort(f.edgeHost(), cfg.RegistryPort)
	if err != nil {
		return info, nil, err
	}
	info.Registry = net.JoinHostPort(f.edgeHost(), strconv.Itoa(regPort))
	l, err := net.Listen("tcp", info.Registry)
	if err != nil {
		return info, nil, fmt.Errorf("listen for the registry: %w", err)
	}
	srv := &http.Server{
		Handler:           registry.New(registry.WithBlobHandler(registry.NewDiskBlobHandler(d.registry)), registry.Logger(slogStd(f.log, "registry"))),
		ReadHeaderTimeout: 10 * time.Second,
	}
	go func() { _ = srv.Serve(l) }()
	f.log.Info("registry serving", "address", info.Registry)

	if err := labelAccount(ctx, client, cfg.Account); err != nil {
		return info, srv, err
	}
	token, err := f.installChart(ctx, client, info.Kubeconfig)
	if err != nil {
		return info, srv, err
	}
	info.Token = token
	if info.ProviderKubeconfig, err = f.providerKubeconfig(ctx, client, info.APIServer, pk.caPEM()); err != nil {
		return info, srv, err
	}

	if !cfg.ControlPlaneOnly {
		if err := f.startEdge(ctx, client, &info); err != nil {
			return info, srv, err
		}
	}
	if err := writeEnvFile(info); err != nil {
		return info, srv, err
	}
	return info, srv, nil
}

func (f *fabric) issueControlPlaneCerts(pk *pki) error {
	steps := []error{
		pk.issueServing("apiserver", "127.0.0.1", "localhost", "10.0.0.1",
			"kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"),
		pk.issueClient("admin", "edgefabric-admin", "system:masters"),
		pk.issueClient("kube-scheduler", "system:kube-scheduler", "system:masters"),
		pk.issueClient("kube-controller-manager", "system:kube-controller-manager", "system:masters"),
		pk.issueClient("apiserver-kubelet-client", "kube-apiserver-kubelet-client", "system:masters"),
	}
	return errors.Join(steps...)
}

const schedulerConfig = `apiVersion: kubescheduler.config.k8s.io/v1
kind: KubeSchedulerConfiguration
clientConnection:
  kubeconfig: %q
  qps: 1000
  burst: 2000
leaderElection:
  leaderElect: false
`

func (f *fabric) startScheduler(pk *pki, server string) (*proc, string, error) {
	kubeconfig := filepath.Join(f.dirs.pki, "kube-scheduler.kubeconfig")
	if err := writeKubeconfig(kubeconfig, server, pk, "kube-scheduler"); err != nil {
		return nil, "", err
	}
	configPath := filepath.Join(f.dirs.pki, "kube-scheduler.yaml")
	if err := os.WriteFile(configPath, fmt.Appendf(nil, schedulerConfig, kubeconfig), 0o600); err != nil {
		return nil, "", err
	}
	port, err := pickPort("127.0.0.1", 0)
	if err != nil {
		return nil, "", err
	}
	f.log.Info("starting kube-scheduler")
	p, err := f.startProc("kube-scheduler", filepath.Join(f.cfg.AssetsDir, "kube-scheduler"),
		"--config="+configPath,
		"--authentication-kubeconfig="+kubeconfig, "--authorization-kubeconfig="+kubeconfig,
		"--bind-address=127.0.0.1", "--secure-port="+strconv.Itoa(port),
		"--cert-dir="+filepath.Join(f.dirs.pki, "kube-scheduler-generated"),
	)
	return p, "https://127.0.0.1:" + strconv.Itoa(port) + "/readyz", err
}

func (f *fabric) startControllerManager(pk *pki, server string) (*proc, string, error) {
	kubeconfig := filepath.Join(f.dirs.pki, "kube-controller-manager.kubeconfig")
	if err := writeKubeconfig(kubeconfig, server, pk, "kube-controller-manager"); err != nil {
		return nil, "", err
	}
	port, err := pickPort("127.0.0.1", 0)
	if err != nil {
		return nil, "", err
	}
	f.log.Info("starting kube-controller-manager")
	p, err := f.startProc("kube-controller-manager", filepath.Join(f.cfg.AssetsDir, "kube-controller-manager"),
		"--kubeconfig="+kubeconfig,
		"--authentication-kubeconfig="+kubeconfig, "--authorization-kubeconfig="+kubeconfig,
		"--leader-elect=false",
		// Every on-by-default controller; none needs a cloud.
		"--controllers=*",
		"--kube-api-qps=1000", "--kube-api-burst=2000",
		"--service-account-private-key-file="+pk.path("sa.key"),
		"--root-ca-file="+pk.path("ca.crt"),
		"--cluster-signing-cert-file="+pk.path("ca.crt"), "--cluster-signing-key-file="+pk.path("ca.key"),
		"--use-service-account-credentials=false",
		"--bind-address=127.0.0.1", "--secure-port="+strconv.Itoa(port),
		"--cert-dir="+filepath.Join(f.dirs.pki, "kube-controller-manager-generated"),
	)
	return p, "https://127.0.0.1:" + strconv.Itoa(port) + "/healthz", err
}

// startEdge starts the provider, waits for its CA, starts the agents and waits for
// the account's node to be Ready.
func (f *fabric) startEdge(ctx context.Context, client kubernetes.Interface, info *Info) error {
	cfg, d := f.cfg, f.dirs
	hubPort, err := pickPort(f.edgeHost(), cfg.HubPort)
	if err != nil {
		return err
	}
	kubeletPort, err := pickPort("127.0.0.1", cfg.KubeletPort)
	if err != nil {
		return err
	}
	info.Hub = net.JoinHostPort(f.edgeHost(), strconv.Itoa(hubPort))
	sans := "127.0.0.1,localhost"
	if !cfg.Loopback {
		sans += "," + f.edgeHost()
	}
	info.HubCA = filepath.Join(d.provider, "ca.crt")

	f.log.Info("starting provider", "hub", info.Hub, "kubelet_port", kubeletPort)
	provider, err := f.startProc("provider", cfg.ProviderBin,
		"--kubeconfig", info.ProviderKubeconfig,
		"--namespace", systemNamespace,
		"--state-dir", d.provider,
		"--hub-listen", info.Hub,
		"--hub-san", sans,
		"--kubelet-listen", "127.0.0.1:"+strconv.Itoa(kubeletPort),
		"--node-ip", "127.0.0.1",
		// The CA of the API server's kubelet client certificate: the kubelet
		// API lets the API server in by it (kubectl logs, exec, top).
		"--kubelet-client-ca", filepath.Join(d.pki, "ca.crt"),
	)
	if err != nil {
		return err
	}
	if err := provider.waitFile(ctx, info.HubCA); err != nil {
		return err
	}

	for i := 1; i <= cfg.agentCount(); i++ {
		name := "agent-" + strconv.Itoa(i)
		an := lanPlan(i, cfg.LANs, cfg.Loopback)
		f.log.Info("starting agent", "name", name, "lan", an.lan, "address", an.addr, "netns", an.netns)
		// The token in a file of its own, not on the command line where ps
		// shows it; the agent removes the file once it joined.
		tokenFile := filepath.Join(d.agents, name+".token")
		if err := os.WriteFile(tokenFile, []byte(info.Token+"\n"), 0o600); err != nil {
			return err
		}
		if _, err := f.startProcIn(name, an.netns, cfg.AgentBin,
			"--hub", info.Hub,
			"--token-file", tokenFile,
			"--hub-ca", info.HubCA,
			"--data-dir", filepath.Join(d.agents, name),
			"--device-id", "demo-"+strconv.Itoa(i),
			"--labels", "demo=true",
			"--advertise-address", an.addr,
			// The local registry serves plain HTTP.
			"--insecure-registry", info.Registry,
		); err != nil {
			return err
		}
	}

	f.log.Info("waiting for node to be Ready", "node", cfg.NodeName)
	return f.waitNodeReady(ctx, client, cfg.NodeName)
}

// waitNodeReady returns once node name has condition Ready=True, failing early if
// the provider or an agent exits.
func (f *fabric) waitNodeReady(ctx context.Context, client kubernetes.Interface, name string) error {
	selector := fields.OneTermEqualSelector("metadata.name", name).String()
	for {
		// Watch before looking, so no change in between is missed.
		w, err := client.CoreV1().Nodes().Watch(ctx, metav1.ListOptions{FieldSelector: selector})
		if err != nil {
			return fmt.Errorf("watch node %s: %w", name, err)
		}
		node, err := client.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
		switch {
		case err == nil && nodeReady(node):
			w.Stop()
			f.log.Info("node ready", "node", name)
			return nil
		case err != nil && !apierrors.IsNotFound(err):
			w.Stop()
			return fmt.Errorf("get node %s: %w", name, err)
		}
		select {
		case <-ctx.Done():
			w.Stop()
			return fmt.Errorf("node %s not Ready: %w; see %s", name, ctx.Err(), f.dirs.logs)
		case p := <-f.exited:
			w.Stop()
			return p.exitedErr()
		case <-w.ResultChan():
		}
		w.Stop()
	}
}

func nodeReady(n *corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// labelAccount labels namespace default for account; the chart creates the
// system namespace and the account's bootstrap token.
func labelAccount(ctx context.Context, client kubernetes.Interface, account string) error {
	patch := fmt.Appendf(nil, `{"metadata":{"labels":{%q:%q}}}`, efv1.LabelAccount, account)
	if _, err := client.CoreV1().Namespaces().Patch(ctx, "default", types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
		return fmt.Errorf("label namespace default: %w", err)
	}
	return nil
}

// edgeHost is the host address the agents reach the hub and the registry on.
func (f *fabric) edgeHost() string {
	if !f.cfg.Loopback {
		return lanHost(1)
	}
	return "127.0.0.1"
}

func (f *fabric) startProc(name, path string, args ...string) (*proc, error) {
	return f.startProcIn(name, "", path, args...)
}

// startProcIn starts a child in network namespace netns ("" for the host's).
func (f *fabric) startProcIn(name, netns, path string, args ...string) (*proc, error) {
	p, err := startProc(f.dirs, name, netns, path, args, func(p *proc) {
		select {
		case f.exited <- p:
		default:
		}
	})
	if err != nil {
		return nil, err
	}
	f.mu.Lock()
	f.procs = append(f.procs, p)
	f.mu.Unlock()
	return p, nil
}

// stopAll stops the processes in reverse start order: agents, provider,
// controllers, scheduler, API server, etcd.
func (f *fabric) stopAll() {
	f.mu.Lock()
	procs := f.procs
	f.procs = nil
	f.mu.Unlock()
	// Agents first, together: they are independent of each other.
	var wg sync.WaitGroup
	i := len(procs) - 1
	for ; i >= 0 && strings.HasPrefix(procs[i].name, "agent-"); i-- {
		p := procs[i]
		wg.Go(func() { p.stop(10 * time.Second) })
	}
	wg.Wait()
	for ; i >= 0; i-- {
		procs[i].stop(15 * time.Second)
	}
}

// writeKubeconfig writes a kubeconfig for server with the client certificate
// pki.<user>.{crt,key} embedded.
func writeKubeconfig(path, server string, pk *pki, user string) error {
	cert, err := os.ReadFile(pk.path(user + ".crt"))
	if err != nil {
		return err
	}
	key, err := os.ReadFile(pk.path(user + ".key"))
	if err != nil {
		return err
	}
	const name = "edgefabric-local"
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters[name] = &clientcmdapi.Cluster{Server: server, CertificateAuthorityData: pk.caPEM()}
	cfg.AuthInfos[user] = &clientcmdapi.AuthInfo{ClientCertificateData: cert, ClientKeyData: key}
	cfg.Contexts[name] = &clientcmdapi.Context{Cluster: name, AuthInfo: user, Namespace: "default"}
	cfg.CurrentContext = name
	return clientcmd.WriteToFile(*cfg, path)
}

// writeEnvFile writes info as a shell-sourceable file.
func writeEnvFile(info Info) error {
	var b strings.Builder
	b.WriteString("# The local edgefabric fabric. Use it with:  . " + info.EnvFile + "\n")
	line := func(k, v string) { fmt.Fprintf(&b, "export %s=%s\n", k, shellQuote(v)) }
	line("KUBECONFIG", info.Kubeconfig)
	line("REGISTRY", info.Registry)
	if info.Hub != "" {
		line("HUB", info.Hub)
		line("HUB_CA", info.HubCA)
	}
	line("TOKEN", info.Token)
	// edgeagent reads the token from here (or --token-file), not --token.
	line("EDGEFABRIC_TOKEN", info.Token)
	line("ACCOUNT", info.Account)
	line("EDGEAGENT", info.AgentBin)
	if !info.Loopback {
		var bridges []string
		for lan := 1; lan <= info.LANs; lan++ {
			bridges = append(bridges, lanBridge+strconv.Itoa(lan))
		}
		line("LAN_BRIDGES", strings.Join(bridges, " "))
	}
	for i := 1; i <= info.Agents; i++ {
		if an := lanPlan(i, info.LANs, info.Loopback); an.netns != "" {
			fmt.Fprintf(&b, "# agent-%d: LAN %d, %s in network namespace %s (ip netns exec %s ...)\n", i, an.lan, an.addr, an.netns, an.netns)
		}
	}
	fmt.Fprintf(&b, "export PATH=%s:\"$PATH\"\n", shellQuote(filepath.Dir(info.Kubectl)))
	return os.WriteFile(info.EnvFile, []byte(b.String()), 0o600)
}

func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
