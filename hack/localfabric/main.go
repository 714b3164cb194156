// Command localfabric runs edgefabric's local fabric on loopback, for `make up`,
// `make down` and `make demo`: a real control plane (etcd, kube-apiserver,
// kube-scheduler, kube-controller-manager built by hack/build-controlplane.sh), a
// plain-HTTP OCI registry, the provider and a few agents, all as child processes in
// their own process groups with logs under _output/local/logs.
//
//	localfabric up     start in the background; return once the edge node is Ready
//	localfabric down   stop what up (or demo) started; idempotent
//	localfabric demo   up in the foreground, run examples/hello on it, wait for Ctrl-C
//	localfabric status say whether a fabric is running, and print its env file
//
// Flags follow the mode, e.g. `localfabric up -agents 5`. up and demo start from a
// clean state directory every time.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// Config is what the flags set. Paths are absolute once parsed.
type Config struct {
	// Root is the repository root; relative defaults are under it.
	Root string
	// Dir holds all state, logs, pid files and the env file. Default
	// <root>/_output/local. up and demo delete it first.
	Dir string
	// AssetsDir holds the control-plane binaries. Empty: run
	// hack/build-controlplane.sh (which builds them once) and use what it prints.
	AssetsDir string
	// HelmBin is the helm CLI that installs the chart. Empty: run
	// hack/build-helm.sh (which builds it once) and use what it prints.
	HelmBin string
	// ProviderBin and AgentBin are the edgefabric binaries (make build).
	ProviderBin, AgentBin string
	// Agents is how many agents to start in each LAN (devices demo-1 ...
	// demo-N, N = Agents × LANs).
	Agents int
	// LANs is how many separate LANs to run the agents in: each LAN is a
	// bridge and each agent a network namespace on it (root only; see
	// lans.go). One LAN without root, or with Loopback, runs the agents on
	// the host's loopback instead.
	LANs int
	// Loopback runs the agents of the one LAN on the host's loopback even
	// where network namespaces could be had; preflight sets it where they
	// cannot.
	Loopback bool
	// Account is the account of namespace default and of the bootstrap token.
	Account string
	// NodeName is the virtual node that must become Ready. Default edge-<account>.
	NodeName string
	// Preferred ports on 127.0.0.1; a busy one is replaced by a random free port.
	APIServerPort, RegistryPort, HubPort, KubeletPort int
	// ControlPlaneOnly starts the control plane and registry and creates the
	// bootstrap objects, but no provider or agents: for running a provider by hand.
	ControlPlaneOnly bool
	// ReadyTimeout bounds start-up, up to the edge node being Ready.
	ReadyTimeout time.Duration
}

func main() {
	if len(os.Args) < 2 || strings.HasPrefix(os.Args[1], "-") {
		usage(os.Stderr)
		os.Exit(2)
	}
	mode := os.Args[1]
	cfg, err := parseFlags(mode, os.Args[2:])
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "localfabric:", err)
		os.Exit(2)
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err = run(ctx, mode, cfg, logger)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "localfabric:", err)
		os.Exit(1)
	}
}

func usage(w io.Writer) {
	_, _ = fmt.Fprintln(w, `usage: localfabric up|down|demo|status [flags]

  up      start the local fabric in the background; exit 0 once the edge node is Ready
  down    stop everything up or demo started (safe to repeat)
  demo    start the fabric in the foreground, run examples/hello on it, wait for Ctrl-C
  status  say whether a fabric is running and print its env file

run "localfabric up -h" for the flags`)
}

func parseFlags(mode string, args []string) (Config, error) {
	root, err := repoRoot()
	if err != nil {
		return Config{}, err
	}
	cfg := Config{Root: root}
	fs := flag.NewFlagSet("localfabric "+mode, flag.ContinueOnError)
	fs.StringVar(&cfg.Dir, "dir", filepath.Join(root, "_output", "local"), "state, logs and env file of the fabric (wiped by up and demo)")
	fs.StringVar(&cfg.AssetsDir, "assets", os.Getenv("KUBEBUILDER_ASSETS"), "directory of the control-plane binaries (default: $KUBEBUILDER_ASSETS, else what hack/build-controlplane.sh prints)")
	fs.StringVar(&cfg.HelmBin, "helm", os.Getenv("EDGEFABRIC_HELM"), "helm binary (default: $EDGEFABRIC_HELM, else what hack/build-helm.sh prints)")
	fs.StringVar(&cfg.ProviderBin, "provider-bin", filepath.Join(root, "_output", "bin", "provider"), "provider binary")
	fs.StringVar(&cfg.AgentBin, "agent-bin", filepath.Join(root, "_output", "bin", "edgeagent"), "edgeagent binary")
	fs.IntVar(&cfg.Agents, "agents", 3, "number of agents in each LAN")
	fs.IntVar(&cfg.LANs, "lans", 1, "number of LANs, each a bridge with the agents in network namespaces (root); one LAN runs on loopback without root")
	fs.BoolVar(&cfg.Loopback, "loopback", false, "run the agents on the host's loopback (one LAN), not in network namespaces")
	fs.StringVar(&cfg.Account, "account", "demo", "account of namespace default and of the bootstrap token")
	fs.StringVar(&cfg.NodeName, "node", "", "virtual node to wait for (default edge-<account>)")
	fs.IntVar(&cfg.APIServerPort, "apiserver-port", 6443, "preferred kube-apiserver port")
	fs.IntVar(&cfg.RegistryPort, "registry-port", 5001, "preferred registry port")
	fs.IntVar(&cfg.HubPort, "hub-port", 7443, "preferred hub port")
	fs.IntVar(&cfg.KubeletPort, "kubelet-port", 10250, "preferred kubelet API port of the provider")
	fs.BoolVar(&cfg.ControlPlaneOnly, "control-plane-only", false, "start no provider and no agents")
	fs.DurationVar(&cfg.ReadyTimeout, "ready-timeout", 120*time.Second, "how long start-up may take")
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	if fs.NArg() > 0 {
		return cfg, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if cfg.NodeName == "" {
		cfg.NodeName = "edge-" + cfg.Account
	}
	for _, p := range []*string{&cfg.Dir, &cfg.AssetsDir, &cfg.HelmBin, &cfg.ProviderBin, &cfg.AgentBin} {
		if *p != "" {
			if *p, err = filepath.Abs(*p); err != nil {
				return cfg, err
			}
		}
	}
	switch {
	case cfg.Agents < 0:
		return cfg, errors.New("-agents must not be negative")
	case cfg.LANs < 1:
		return cfg, errors.New("-lans must be at least 1")
	case cfg.Loopback && cfg.LANs > 1:
		return cfg, errors.New("-loopback runs one LAN; it cannot be given with -lans above 1")
	}
	return cfg, nil
}

func run(ctx context.Context, mode string, cfg Config, logger *slog.Logger) error {
	switch mode {
	case "up":
		return up(ctx, cfg)
	case "down":
		return down(cfg)
	case "demo":
		return demo(ctx, cfg, logger)
	case "status":
		return status(cfg)
	case superviseMode:
		return supervise(ctx, cfg, logger)
	case "help", "-h", "--help":
		usage(os.Stdout)
		return nil
	}
	usage(os.Stderr)
	return fmt.Errorf("unknown mode %q", mode)
}

// repoRoot finds the repository root from the working directory.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "hack", "build-controlplane.sh")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("run localfabric inside the edgefabric repository (no hack/build-controlplane.sh found above the working directory)")
		}
		dir = parent
	}
}

// slogStd adapts logger to a *log.Logger for libraries that want one.
func slogStd(logger *slog.Logger, component string) *log.Logger {
	return slog.NewLogLogger(logger.With("component", component).Handler(), slog.LevelDebug)
}

// agentCount is how many agents run in all.
func (cfg Config) agentCount() int { return cfg.Agents * cfg.LANs }
