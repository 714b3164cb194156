// Command provider is edgefabric's cloud side: it publishes edge clusters as
// virtual-kubelet nodes of a Kubernetes cluster and runs their pods on devices.
// See pkg/provider for what it does; this file only reads flags.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	vklog "github.com/virtual-kubelet/virtual-kubelet/log"
	vkslog "github.com/virtual-kubelet/virtual-kubelet/log/slog"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/klog/v2"

	"github.com/edgefabric/edgefabric/pkg/debugserver"
	"github.com/edgefabric/edgefabric/pkg/provider"
	"github.com/edgefabric/edgefabric/pkg/provider/fabric"
	"github.com/edgefabric/edgefabric/pkg/version"
)

func main() {
	var cfg provider.Config
	var kubeconfig, hubSANs, level, debugListen string
	var qps float64
	var burst int
	fs := flag.NewFlagSet("provider", flag.ExitOnError)
	fs.StringVar(&kubeconfig, "kubeconfig", os.Getenv("KUBECONFIG"), "kubeconfig file; empty means in-cluster configuration")
	fs.StringVar(&cfg.Namespace, "namespace", "edgefabric-system", "namespace of the CA and bootstrap-token Secrets")
	fs.StringVar(&cfg.StateDir, "state-dir", "", "keep the CA in this directory (ca.crt, ca.key) instead of a Secret")
	fs.StringVar(&cfg.HubListen, "hub-listen", ":7443", "address the hub listens on for agents")
	fs.StringVar(&hubSANs, "hub-san", "", "comma-separated names and IPs agents dial the hub by (default localhost,127.0.0.1)")
	fs.StringVar(&cfg.KubeletListen, "kubelet-listen", ":10250", "address the kubelet API listens on")
	fs.StringVar(&cfg.NodeIP, "node-ip", os.Getenv("POD_IP"), "address the API server reaches the kubelet API on (published as the nodes' InternalIP)")
	fs.DurationVar(&cfg.CertTTL, "cert-ttl", 24*time.Hour, "lifetime of device certificates")
	fs.DurationVar(&cfg.RenewalGrace, "renewal-grace", 30*24*time.Hour, "how long after its certificate expired a device (offline meanwhile) may still renew it with its own key; past it, it joins again with a bootstrap token. Negative means none")
	fs.DurationVar(&cfg.TokenTTL, "token-ttl", 24*time.Hour, "lifetime of a bootstrap token whose Secret sets no expiration, from the Secret's creation")
	fs.Float64Var(&cfg.BootstrapLimits.PerSource, "bootstrap-rate-per-source", 1, "bootstrap (join) calls per second one IP address may make, sustained; more are refused with ResourceExhausted")
	fs.IntVar(&cfg.BootstrapLimits.PerSourceBurst, "bootstrap-burst-per-source", 20, "bootstrap calls one IP address may make at once (a site behind one NAT enrolling a batch)")
	fs.Float64Var(&cfg.BootstrapLimits.Total, "bootstrap-rate", 20, "bootstrap calls per second from all addresses, sustained")
	fs.IntVar(&cfg.BootstrapLimits.TotalBurst, "bootstrap-burst", 100, "bootstrap calls all addresses may make at once")
	fs.IntVar(&cfg.Workers, "workers", 8, "pod sync workers per virtual node")
	fs.Float64Var(&qps, "kube-api-qps", 200, "queries per second to the API server")
	fs.IntVar(&burst, "kube-api-burst", 400, "burst of queries to the API server")
	fs.StringVar(&level, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&debugListen, "debug-listen", "", "serve Go's profiles (/debug/pprof/) on this address, e.g. 127.0.0.1:6060; empty means off. Unauthenticated: bind it to loopback")
	scopeList := fs.String("scopes", "network,account", "comma-separated scopes whose clusters are published as virtual nodes: account, network, proximity")
	fs.DurationVar(&cfg.ProximityRTT, "proximity-rtt", 0, "radius of proximity clusters in estimated round-trip time, e.g. 20ms (with --scopes proximity)")
	fs.Float64Var(&cfg.ProximityKm, "proximity-km", 0, "radius of proximity clusters in kilometres, for devices with --location lat,long (with --scopes proximity)")
	fs.DurationVar(&cfg.ClusterDissolveGrace, "cluster-dissolve-grace", 5*time.Minute, "how long the node of a cluster that no longer forms stays, NotReady, before it is deleted once no pods are left on it")
	fs.DurationVar(&cfg.DeviceLossGrace, "device-loss-grace", 60*time.Second, "how long a pod's device may be offline before the pod is placed on another device of its cluster (per pod: annotation edgefabric.io/device-loss-grace)")
	fs.DurationVar(&cfg.DeviceGCAfter, "device-gc-after", 168*time.Hour, "how long a device may be offline before it is forgotten: dropped from its clusters and its EdgeDevice deleted (it appears again if it comes back); 0 never forgets")
	fs.StringVar(&cfg.HealthListen, "health-listen", "", "serve /healthz and /readyz (200 only on the serving leader) on this address, e.g. :8081; empty means off")
	fs.BoolVar(&cfg.LeaderElection.Enabled, "leader-elect", false, "elect a leader among replicas through a Lease in --namespace; only the leader serves, the others stand by")
	fs.StringVar(&cfg.LeaderElection.Name, "leader-elect-id", "edgefabric-provider", "name of the leader-election Lease")
	fs.StringVar(&cfg.LeaderElection.Identity, "leader-elect-identity", os.Getenv("POD_NAME"), "this replica's identity in the Lease (default the host name and a random suffix)")
	fs.DurationVar(&cfg.LeaderElection.LeaseDuration, "leader-elect-lease-duration", 15*time.Second, "how long standbys wait after the leader's last renewal before taking over")
	fs.DurationVar(&cfg.LeaderElection.RenewDeadline, "leader-elect-renew-deadline", 10*time.Second, "how long the leader tries to renew before it stops leading")
	fs.DurationVar(&cfg.LeaderElection.RetryPeriod, "leader-elect-retry-period", 2*time.Second, "how often candidates try to acquire or renew the Lease")
	kubeletAuth := fs.Bool("kubelet-auth", true, "authenticate (client certificate, TokenReview) and authorize (SubjectAccessReview on nodes/proxy, log, stats, metrics) every kubelet API request; false serves it to anyone who reaches it (local debugging only)")
	kubeletClientCA := fs.String("kubelet-client-ca", "", "PEM file of the CAs that sign the API server's kubelet client certificate; empty means the cluster CA of the ServiceAccount mount ("+serviceAccountCA+") when present")
	showVersion := fs.Bool("version", false, "print the version and exit")
	_ = fs.Parse(os.Args[1:])
	if *showVersion {
		fmt.Println(version.Version)
		return
	}
	if hubSANs != "" {
		cfg.HubHosts = strings.Split(hubSANs, ",")
	}
	cfg.Version = version.Version
	sc, err := fabric.ParseScopes(*scopeList)
	if err != nil {
		fmt.Fprintf(os.Stderr, "provider: --scopes: %v\n", err)
		os.Exit(2)
	}
	cfg.Scopes = sc
	cfg.KubeletAuth.Disabled = !*kubeletAuth
	if cfg.KubeletAuth.ClientCA, err = readClientCA(*kubeletClientCA); err != nil {
		fmt.Fprintf(os.Stderr, "provider: --kubelet-client-ca: %v\n", err)
		os.Exit(2)
	}

	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		fmt.Fprintf(os.Stderr, "provider: --log-level: %v\n", err)
		os.Exit(2)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lv}))
	klog.SetSlogLogger(log.With("source", "client-go"))
	vklog.L = vkslog.FromSlog(log.With("source", "virtual-kubelet"))

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	stopDebug := func() {}
	if debugListen != "" {
		var err error
		if stopDebug, err = debugserver.Start(debugListen, log); err != nil {
			log.Error("debug listener", "err", err)
			os.Exit(1)
		}
	}
	err = run(ctx, cfg, kubeconfig, qps, burst, log)
	stopDebug()
	if err != nil {
		log.Error("provider stopped", "err", err)
		os.Exit(1)
	}
}

// serviceAccountCA is the cluster CA in a pod's ServiceAccount mount.
const serviceAccountCA = "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt"

// readClientCA reads the kubelet client CA from path or, if path is empty,
// from the ServiceAccount mount if there is one; nil if neither.
func readClientCA(path string) ([]byte, error) {
	if path == "" {
		b, err := os.ReadFile(serviceAccountCA)
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
		return b, err
	}
	return os.ReadFile(path)
}

func run(ctx context.Context, cfg provider.Config, kubeconfig string, qps float64, burst int, log *slog.Logger) error {
	var rc *rest.Config
	var err error
	if kubeconfig != "" {
		rc, err = clientcmd.BuildConfigFromFlags("", kubeconfig)
	} else {
		rc, err = rest.InClusterConfig()
	}
	if err != nil {
		return fmt.Errorf("kubernetes client config: %w", err)
	}
	rc.QPS, rc.Burst = float32(qps), burst
	rc.UserAgent = "edgefabric-provider/" + version.Version
	client, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return err
	}
	cfg.RESTConfig = rc
	err = provider.Run(ctx, cfg, client, log)
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}
