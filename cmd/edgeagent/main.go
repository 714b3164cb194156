// Command edgeagent runs on a device and joins it to an edgefabric fabric:
//
//	edgeagent [run] --hub HOST:PORT --hub-ca ca.crt --token-file FILE [flags]
//	edgeagent join --hub HOST:PORT --hub-ca ca.crt --token-file FILE [--config PATH] [--data-dir DIR] [--dry-run]
//	edgeagent status [--data-dir DIR] [--json]
//	edgeagent version
//
// Flags override the values of a --config file (YAML or JSON, with the field
// names of agent.Config).
//
// The bootstrap token comes from --token-file (removed by the agent once the
// device joined) or the environment variable EDGEFABRIC_TOKEN. --token still
// works, but every user of the machine sees it in ps, so it is warned about.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"

	"go.yaml.in/yaml/v3"

	"github.com/edgefabric/edgefabric/pkg/agent"
	"github.com/edgefabric/edgefabric/pkg/agent/runtime/process"
	"github.com/edgefabric/edgefabric/pkg/debugserver"
	"github.com/edgefabric/edgefabric/pkg/version"
)

func main() {
	args := os.Args[1:]
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		switch args[0] {
		case "run":
			args = args[1:]
		case "version":
			fmt.Println(version.Version)
			return
		case "join", "status":
			exitOn(subcommand(args[0], args[1:]))
			return
		default:
			fmt.Fprintf(os.Stderr, "edgeagent: unknown command %q (commands: run, join, status, version)\n", args[0])
			os.Exit(2)
		}
	}
	cfg, level, debugListen, err := parse(args)
	if err != nil {
		fmt.Fprintf(os.Stderr, "edgeagent: %v\n", err)
		os.Exit(2)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, cfg, debugListen, log); err != nil && !errors.Is(err, context.Canceled) {
		log.Error("agent stopped", "err", err)
		os.Exit(1)
	}
}

// run runs the agent and, if debugListen is set, serves Go's profiles there
// until the agent has stopped.
func run(ctx context.Context, cfg agent.Config, debugListen string, log *slog.Logger) error {
	if debugListen == "" {
		return agent.Run(ctx, cfg, log)
	}
	lis, err := net.Listen("tcp", debugListen)
	if err != nil {
		return fmt.Errorf("debug listen: %w", err)
	}
	// kubectl port-forward never reaches it, not even for a pod declaring its port.
	cfg.ReservedPorts = append(cfg.ReservedPorts, int32(lis.Addr().(*net.TCPAddr).Port))
	defer debugserver.Serve(lis, log)()
	return agent.Run(ctx, cfg, log)
}

// TokenEnv is the environment variable the bootstrap token may be given in.
const TokenEnv = "EDGEFABRIC_TOKEN"

// tokenFlagWarning is printed when the token is given on the command line.
const tokenFlagWarning = "edgeagent: warning: --token shows the bootstrap token to every user of this machine (ps, /proc); use --token-file FILE or " + TokenEnv + "\n"

func parse(args []string) (agent.Config, slog.Level, string, error) {
	return parseWith(args, os.Getenv, os.Stderr)
}

// agentFlags are the flags that are not one agent.Config field each: they
// are parsed into it after the flag set (see flags.apply).
type agentFlags struct {
	configFile, labels, insecure, level, debugListen, imageCacheSize string
	meshPort                                                         int
	allowRoot                                                        bool
	usernsBase                                                       uint64
}

// newFlagSet returns the agent's flag set, every flag that is one field of
// the configuration bound to that field of cfg (which it sets to the flag's
// default), the others to f.
func newFlagSet(cfg *agent.Config, f *agentFlags) *flag.FlagSet {
	fs := flag.NewFlagSet("edgeagent", flag.ContinueOnError)
	fs.StringVar(&f.configFile, "config", "", "config file (YAML or JSON)")
	fs.StringVar(&cfg.Hub, "hub", "", "the provider's hub, host:port")
	fs.StringVar(&cfg.HubCA, "hub-ca", "", "PEM file of the CA that signed the hub's certificate")
	fs.StringVar(&cfg.Token, "token", "", "account bootstrap token; visible in ps: prefer --token-file or "+TokenEnv)
	fs.StringVar(&cfg.TokenFile, "token-file", "", "file holding the account bootstrap token (needed to join the first time); removed once the device joined")
	fs.StringVar(&cfg.DataDir, "data-dir", "/var/lib/edgeagent", "directory for the agent's store, images and logs")
	fs.StringVar(&cfg.DeviceID, "device-id", "", "device ID (default: the stored one, or the host name with a random suffix)")
	fs.StringVar(&f.labels, "labels", "", "device labels, k=v,k=v")
	fs.StringVar(&f.insecure, "insecure-registry", "", "comma-separated registries (host:port) that may be pulled from over plain HTTP")
	fs.StringVar(&cfg.AdvertiseAddress, "advertise-address", "", "the device's address for pods (default: the one that routes to the hub)")
	fs.Int64Var(&cfg.CPUMillis, "cpu-millis", 0, "CPU offered to the fabric in millicores (default: all CPUs)")
	fs.Int64Var(&cfg.MemoryBytes, "memory-bytes", 0, "memory offered to the fabric (default: all memory)")
	fs.Int64Var(&cfg.Pods, "pods", 0, "pods offered to the fabric (default 110)")
	fs.DurationVar(&cfg.RestartBackoff, "restart-backoff", 0, "first crash-loop back-off (default 10s)")
	fs.DurationVar(&cfg.HeartbeatInterval, "heartbeat-interval", 0, "how often to tell the hub the device is alive (default 10s)")
	fs.Int64Var(&cfg.LogMaxBytes, "log-max-bytes", 0, "size at which a container's log file is rotated (default 10 MiB)")
	fs.IntVar(&cfg.LogMaxFiles, "log-max-files", 0, "log files kept per container, the current one included (default 5)")
	fs.StringVar(&cfg.Network, "network", "", "name of the device's network cluster (default: derived from the LAN's subnet and gateway)")
	fs.StringVar(&cfg.Location, "location", "", "where the device is: lat,long in degrees or a region label, for proximity clusters")
	fs.StringVar(&cfg.Region, "region", "", "region label of the device, for proximity clusters")
	fs.StringVar(&cfg.MeshListen, "mesh-listen", "", "address of the device mesh listener (mTLS between agents of a LAN); default :0, a free port announced over mDNS")
	fs.IntVar(&f.meshPort, "mesh-port", 0, "port of the device mesh listener on all addresses (shorthand for --mesh-listen :PORT)")
	fs.DurationVar(&cfg.DiscoveryInterval, "discovery-interval", 0, "how often the mDNS browse for LAN peers restarts (default 15s)")
	fs.DurationVar(&cfg.ProbeInterval, "probe-interval", 0, "how often LAN peers are probed over the mesh (default 2s)")
	fs.DurationVar(&cfg.LANInterval, "lan-interval", 0, "how often the LAN's subnet and gateway are read again, to notice a move to another LAN (default 1m)")
	fs.BoolVar(&cfg.KeepIdlePages, "keep-idle-pages", false, "keep the binary's and compiled modules' pages resident when the agent is idle (default: give them back to the kernel, read back from storage on use)")
	fs.IntVar(&cfg.WASMDefaultMemoryPercent, "wasm-default-memory-percent", 0, "memory limit of a WASM container that sets none, in percent of --memory-bytes (default 25)")
	fs.StringVar(&cfg.NativeWorkloads, "native-workloads", agent.NativeIsolated, "where native containers run: isolated (only in their sandbox: Linux, the agent as root), unisolated (also elsewhere, as the agent's user, able to read the agent's store and key) or off")
	fs.BoolVar(&f.allowRoot, "allow-root-images", true, "run native containers as root (uid 0, in their sandbox) when their image or pod says so; false refuses them")
	fs.StringVar(&cfg.NativeUserNS, "native-userns", process.UserNSAuto, "run isolated native containers in user namespaces, their root an unprivileged range of the device's uids: auto (where the kernel allows it; else without, with a warning), required (the agent does not start without) or off")
	fs.Uint64Var(&f.usernsBase, "userns-base", 0, "first host uid and gid of the native containers' user namespace ranges, one range of 65536 ids per running container (default 1073741824, 2^30)")
	fs.IntVar(&cfg.UserNSRanges, "userns-ranges", 0, "how many user namespace ranges there are: the most native containers that run at once (default 1024)")
	fs.StringVar(&f.imageCacheSize, "image-cache-size", "", "budget of the image cache: bytes, or with a suffix Ki, Mi, Gi, Ti (1024s) or K, M, G, T (1000s); past it, images no pod uses are removed, least recently used first (default 2Gi)")
	fs.DurationVar(&cfg.ImagePullProgressTimeout, "image-pull-progress-timeout", 0, "give up on an image pull that receives nothing from the registry for this long (default 1m)")
	fs.DurationVar(&cfg.ImagePullTimeout, "image-pull-timeout", 0, "give up on an image pull that takes longer than this (default: no limit but the progress timeout)")
	fs.DurationVar(&cfg.ImageMaxUnusedAge, "image-max-unused-age", 0, "remove cached images no pod has used for this long (default 168h)")
	fs.DurationVar(&cfg.ImageGCInterval, "image-gc-interval", 0, "how often the image cache is collected, besides when it passes its budget (default 5m)")
	fs.StringVar(&f.level, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&f.debugListen, "debug-listen", "", "serve Go's profiles (/debug/pprof/) on this address, e.g. 127.0.0.1:6061; empty means off. Unauthenticated: bind it to loopback")
	return fs
}

// apply sets the fields of cfg that the flags in f give, checking them.
func (f *agentFlags) apply(cfg *agent.Config) error {
	if f.labels != "" {
		cfg.Labels = map[string]string{}
		for _, kv := range strings.Split(f.labels, ",") {
			k, v, ok := strings.Cut(kv, "=")
			if !ok || k == "" {
				return fmt.Errorf("--labels: %q is not k=v", kv)
			}
			cfg.Labels[k] = v
		}
	}
	if f.meshPort != 0 {
		if cfg.MeshListen != "" {
			return errors.New("--mesh-port and --mesh-listen: give one of them")
		}
		if f.meshPort < 0 || f.meshPort > 65535 {
			return fmt.Errorf("--mesh-port %d: out of range 1-65535", f.meshPort)
		}
		cfg.MeshListen = ":" + strconv.Itoa(f.meshPort)
	}
	if f.insecure != "" {
		cfg.InsecureRegistries = strings.Split(f.insecure, ",")
	}
	cfg.NoRootImages = !f.allowRoot
	if f.usernsBase > 1<<32-1 {
		return fmt.Errorf("--userns-base %d: past the last uid", f.usernsBase)
	}
	if f.usernsBase != 0 {
		cfg.UserNSBase = uint32(f.usernsBase)
	}
	if f.imageCacheSize != "" {
		n, err := parseSize(f.imageCacheSize)
		if err != nil {
			return fmt.Errorf("--image-cache-size: %w", err)
		}
		cfg.ImageCacheBytes = n
	}
	return nil
}

// parseWith parses args, taking the token from getenv(TokenEnv) when no
// flag or file gives one, and writes warnings to warn.
func parseWith(args []string, getenv func(string) string, warn io.Writer) (agent.Config, slog.Level, string, error) {
	var cfg agent.Config
	var f agentFlags
	fs := newFlagSet(&cfg, &f)
	if err := fs.Parse(args); err != nil {
		return cfg, 0, "", err
	}
	if fs.NArg() > 0 {
		return cfg, 0, "", fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if err := f.apply(&cfg); err != nil {
		return cfg, 0, "", err
	}
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(f.level)); err != nil {
		return cfg, 0, "", fmt.Errorf("--log-level: %w", err)
	}

	if f.configFile != "" {
		data, err := os.ReadFile(f.configFile)
		if err != nil {
			return cfg, 0, "", err
		}
		fromFlags := cfg
		cfg = agent.Config{DataDir: fromFlags.DataDir}
		if err := yaml.Unmarshal(data, &cfg); err != nil {
			return cfg, 0, "", fmt.Errorf("config %s: %w", f.configFile, err)
		}
		// Flags given on the command line win over the file: those bound
		// to a field set it again, parsed a second time onto the file's
		// values; the others are taken from the flags' configuration.
		if err := fs.Parse(args); err != nil {
			return cfg, 0, "", err
		}
		fs.Visit(func(fl *flag.Flag) {
			switch fl.Name {
			case "labels":
				cfg.Labels = fromFlags.Labels
			case "insecure-registry":
				cfg.InsecureRegistries = fromFlags.InsecureRegistries
			case "mesh-listen", "mesh-port":
				cfg.MeshListen = fromFlags.MeshListen
			case "allow-root-images":
				cfg.NoRootImages = fromFlags.NoRootImages
			case "userns-base":
				cfg.UserNSBase = fromFlags.UserNSBase
			case "image-cache-size":
				cfg.ImageCacheBytes = fromFlags.ImageCacheBytes
			}
		})
	}
	tokenFlag := false
	fs.Visit(func(fl *flag.Flag) { tokenFlag = tokenFlag || (fl.Name == "token" && fl.Value.String() != "") })
	switch {
	case tokenFlag:
		fmt.Fprint(warn, tokenFlagWarning)
	case cfg.Token != "":
		fmt.Fprintf(warn, "edgeagent: warning: the config file %s holds the bootstrap token, which stays on the device after it joined; use tokenFile\n", f.configFile)
	case cfg.TokenFile == "":
		cfg.Token = getenv(TokenEnv)
	}
	return cfg, lv, f.debugListen, nil
}

// parseSize parses a number of bytes with an optional suffix: Ki, Mi, Gi,
// Ti for powers of 1024, K, M, G, T for powers of 1000.
func parseSize(s string) (int64, error) {
	num, mult := s, int64(1)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"Ki", 1 << 10}, {"Mi", 1 << 20}, {"Gi", 1 << 30}, {"Ti", 1 << 40}, {"K", 1e3}, {"M", 1e6}, {"G", 1e9}, {"T", 1e12}} {
		if n, ok := strings.CutSuffix(s, u.suffix); ok {
			num, mult = n, u.mult
			break
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n < 0 || n > math.MaxInt64/mult {
		return 0, fmt.Errorf("%q is not a size such as 2Gi, 512Mi or 1000000", s)
	}
	return n * mult, nil
}

// subcommand runs join or status.
func subcommand(name string, args []string) error {
	if name == "join" {
		return join(args, os.Stdout, os.Stderr, os.Getenv)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return status(ctx, args, os.Stdout)
}

// exitOn exits with status 1 and the error's message if err is not nil.
func exitOn(err error) {
	if err == nil {
		return
	}
	if !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintf(os.Stderr, "edgeagent: %v\n", err)
	}
	os.Exit(1)
}
