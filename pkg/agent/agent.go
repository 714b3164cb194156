// Package agent is edgefabric's device side. Run opens the agent's store,
// starts the image store and the WASM runtime, resumes the workloads it was
// running, and keeps the device joined to the hub. cmd/edgeagent builds the
// Config from flags or a config file.
//
// Nothing here may import Kubernetes, controller-runtime or virtual-kubelet:
// the agent stays one small binary (a test enforces it).
package agent

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	goruntime "runtime"
	"strings"
	"sync"
	"time"

	"github.com/edgefabric/edgefabric/pkg/agent/client"
	"github.com/edgefabric/edgefabric/pkg/agent/image"
	"github.com/edgefabric/edgefabric/pkg/agent/logs"
	"github.com/edgefabric/edgefabric/pkg/agent/mesh"
	"github.com/edgefabric/edgefabric/pkg/agent/runtime/process"
	"github.com/edgefabric/edgefabric/pkg/agent/runtime/wasm"
	"github.com/edgefabric/edgefabric/pkg/agent/store"
	"github.com/edgefabric/edgefabric/pkg/agent/supervisor"
	"github.com/edgefabric/edgefabric/pkg/agent/workingset"
	hubv1 "github.com/edgefabric/edgefabric/pkg/apis/hub/v1"
	"github.com/edgefabric/edgefabric/pkg/identity"
	"github.com/edgefabric/edgefabric/pkg/scopes/network"
	"github.com/edgefabric/edgefabric/pkg/scopes/proximity"
	"github.com/edgefabric/edgefabric/pkg/version"
)

// Config configures the agent. The zero value of each field is documented.
type Config struct {
	// Hub is the provider's hub address, host:port. Required.
	Hub string `json:"hub" yaml:"hub"`
	// HubCA is the PEM file of the CA that signed the hub's certificate. Required.
	HubCA string `json:"hubCA" yaml:"hubCA"`
	// Token is the account bootstrap token; needed to join the first time
	// (and after being offline past the certificate's expiry and the hub's
	// renewal grace). Prefer TokenFile: a token in a config file stays on
	// the device. Empty means TokenFile's.
	Token string `json:"token" yaml:"token"`
	// TokenFile is a file (mode 0600) holding the bootstrap token. The agent
	// reads it only to join and removes it once the device joined. Empty
	// means none.
	TokenFile string `json:"tokenFile" yaml:"tokenFile"`
	// DataDir holds the agent's store, image cache and logs. Empty means
	// /var/lib/edgeagent.
	DataDir string `json:"dataDir" yaml:"dataDir"`
	// DeviceID names the device; empty means the one in the store, or on first
	// start the host name with a random suffix.
	DeviceID string `json:"deviceID" yaml:"deviceID"`
	// Labels are the device's labels, seen by placement.
	Labels map[string]string `json:"labels" yaml:"labels"`
	// InsecureRegistries may be pulled from over plain HTTP (loopback always may).
	InsecureRegistries []string `json:"insecureRegistries" yaml:"insecureRegistries"`
	// AdvertiseAddress is the device's address for pods (the pod IP); empty
	// means the address of the interface that routes to the hub.
	AdvertiseAddress string `json:"advertiseAddress" yaml:"advertiseAddress"`
	// CPUMillis, MemoryBytes and Pods offered to the fabric; zero means the
	// machine's CPUs, its memory, and 110 pods.
	CPUMillis   int64 `json:"cpuMillis" yaml:"cpuMillis"`
	MemoryBytes int64 `json:"memoryBytes" yaml:"memoryBytes"`
	Pods        int64 `json:"pods" yaml:"pods"`
	// RestartBackoff is the first crash-loop back-off; zero means 10 s.
	RestartBackoff time.Duration `json:"restartBackoff" yaml:"restartBackoff"`
	// HeartbeatInterval is how often the agent tells the hub it is alive; zero means 10 s.
	HeartbeatInterval time.Duration `json:"heartbeatInterval" yaml:"heartbeatInterval"`
	// LogMaxBytes is the size at which a container's log file is rotated;
	// zero means 10 MiB.
	LogMaxBytes int64 `json:"logMaxBytes" yaml:"logMaxBytes"`
	// LogMaxFiles is how many log files (the current one and rotated ones)
	// are kept per container attempt; zero means 5.
	LogMaxFiles int `json:"logMaxFiles" yaml:"logMaxFiles"`
	// Network names the device's network cluster (--network); empty means the
	// ID derived from the LAN's subnet and gateway.
	Network string `json:"network" yaml:"network"`
	// Location is where the device is: "lat,long" in degrees or a region
	// label (--location); empty means unknown. Region, when set, is the
	// region label (--region) and may accompany a lat,long location.
	Location string `json:"location" yaml:"location"`
	Region   string `json:"region" yaml:"region"`
	// MeshListen is the device mesh's listen address (mTLS between agents of
	// a LAN); empty means ":0", a free port, announced over mDNS.
	MeshListen string `json:"meshListen" yaml:"meshListen"`
	// DiscoveryInterval is how often the mDNS browse restarts; zero means 15 s.
	DiscoveryInterval time.Duration `json:"discoveryInterval" yaml:"discoveryInterval"`
	// ProbeInterval is how often LAN peers are probed over the mesh; zero means 2 s.
	ProbeInterval time.Duration `json:"probeInterval" yaml:"probeInterval"`
	// KeepIdlePages keeps the binary's and compiled modules' pages resident
	// when the agent goes idle; by default they are given back to the kernel
	// (see pkg/agent/workingset) and read back from storage on use.
	KeepIdlePages bool `json:"keepIdlePages" yaml:"keepIdlePages"`
}

// Default fills in defaults that need no I/O.
func (c *Config) Default() {
	if c.DataDir == "" {
		c.DataDir = "/var/lib/edgeagent"
	}
	if c.CPUMillis == 0 {
		c.CPUMillis = int64(goruntime.NumCPU()) * 1000
	}
	if c.MemoryBytes == 0 {
		c.MemoryBytes = totalMemory()
	}
	if c.Pods == 0 {
		c.Pods = 110
	}
	if c.MeshListen == "" {
		c.MeshListen = ":0"
	}
}

// location returns the parsed Location and Region.
func (c Config) location() (proximity.Location, error) {
	loc, err := proximity.ParseLocation(c.Location)
	if err != nil {
		return loc, err
	}
	if c.Region != "" {
		r, err := proximity.ParseLocation(c.Region)
		if err != nil || r.Point != nil {
			return loc, fmt.Errorf("region %q: want a label of lower-case letters, digits, '-', '.', '_'", c.Region)
		}
		loc.Region = r.Region
	}
	return loc, nil
}

// Validate reports a configuration that cannot work.
func (c Config) Validate() error {
	var errs []error
	if c.Hub == "" {
		errs = append(errs, errors.New("hub address is required (--hub host:port)"))
	} else if _, _, err := net.SplitHostPort(c.Hub); err != nil {
		errs = append(errs, fmt.Errorf("hub address %q: %w", c.Hub, err))
	}
	if c.HubCA == "" {
		errs = append(errs, errors.New("the hub's CA certificate is required (--hub-ca FILE)"))
	}
	if c.DeviceID != "" {
		if err := identity.ValidName(c.DeviceID); err != nil {
			errs = append(errs, fmt.Errorf("device id: %w", err))
		}
	}
	if c.LogMaxBytes < 0 || c.LogMaxFiles < 0 {
		errs = append(errs, fmt.Errorf("log rotation: max bytes %d and max files %d must not be negative", c.LogMaxBytes, c.LogMaxFiles))
	}
	if c.AdvertiseAddress != "" && net.ParseIP(c.AdvertiseAddress) == nil {
		errs = append(errs, fmt.Errorf("advertise address %q is not an IP address", c.AdvertiseAddress))
	}
	if _, err := c.location(); err != nil {
		errs = append(errs, err)
	}
	if c.Network != "" && network.ID(network.LAN{Override: c.Network}) == "" {
		errs = append(errs, fmt.Errorf("network name %q is not usable", c.Network))
	}
	if c.MeshListen != "" {
		if _, _, err := net.SplitHostPort(c.MeshListen); err != nil {
			errs = append(errs, fmt.Errorf("mesh listen address %q: %w", c.MeshListen, err))
		}
	}
	return errors.Join(errs...)
}

// Run runs the agent until ctx ends. A cancelled context is a clean stop.
func Run(ctx context.Context, cfg Config, log *slog.Logger) error {
	cfg.Default()
	if err := cfg.Validate(); err != nil {
		return err
	}
	caPEM, err := os.ReadFile(cfg.HubCA)
	if err != nil {
		return fmt.Errorf("hub CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return fmt.Errorf("hub CA %s holds no PEM certificate", cfg.HubCA)
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return err
	}
	st, err := store.Open(filepath.Join(cfg.DataDir, "agent.db"))
	if err != nil {
		return err
	}
	defer st.Close()
	if cfg.DeviceID, err = deviceID(st, cfg.DeviceID); err != nil {
		return err
	}
	log = log.With("device", cfg.DeviceID)
	if err := sealStore(st, cfg.DeviceID); err != nil {
		return err
	}
	if cfg.AdvertiseAddress == "" {
		cfg.AdvertiseAddress = routeAddress(cfg.Hub)
	}

	images, err := image.New(image.Config{
		Dir: filepath.Join(cfg.DataDir, "images"), InsecureRegistries: cfg.InsecureRegistries,
		Platform: goruntime.GOOS + "/" + goruntime.GOARCH,
	}, log.With("component", "images"))
	if err != nil {
		return err
	}
	rt, err := wasm.New(ctx, wasm.Config{CacheDir: filepath.Join(cfg.DataDir, "wasm-cache")}, log.With("component", "wasm"))
	if err != nil {
		return err
	}
	defer rt.Close(context.WithoutCancel(ctx))
	prt, err := process.New(process.Config{StateDir: filepath.Join(cfg.DataDir, "containers")}, log.With("component", "process"))
	if err != nil {
		return err
	}
	defer prt.Close()

	// The supervisor fences workloads on partition by the hub client's last
	// contact; the client is made below, before either runs.
	var cl *client.Client
	sup := supervisor.New(supervisor.Config{
		LogDir: filepath.Join(cfg.DataDir, "logs"), PodIP: cfg.AdvertiseAddress, BackoffBase: cfg.RestartBackoff,
		LogMaxBytes: cfg.LogMaxBytes, LogMaxFiles: cfg.LogMaxFiles,
		VolumeDir: filepath.Join(cfg.DataDir, "volumes"), SharedMemoryDir: sharedMemoryDir(),
		LastContact: func() time.Time { return cl.LastContact() },
		// Fenced while the session looked up: it was not (no word from
		// the hub for too long). A new session brings the full desired
		// state, which alone starts fenced workloads again.
		Fenced: func() { cl.Resync() },
	}, images, supervisor.Runtimes{
		supervisor.RuntimeWASM:    supervisor.WASM(rt),
		supervisor.RuntimeProcess: supervisor.Process(prt),
	}, st, log.With("component", "supervisor"))

	loc, _ := cfg.location() // checked by Validate
	// The mesh and the scope watcher need each other and the hub client; all
	// three are wired up before any of them runs.
	var watcher *scopeWatcher
	mh, err := mesh.New(mesh.Config{
		Listen: cfg.MeshListen,
		Identity: func() (mesh.Identity, bool) {
			cert, ca, account, ok := cl.MeshIdentity()
			return mesh.Identity{Certificate: cert, CA: ca, Account: account, DeviceID: cfg.DeviceID}, ok
		},
		Coordinate: func() *proximity.Coordinate { return watcher.coordinate() },
	}, log.With("component", "mesh"))
	if err != nil {
		return err
	}
	watcher, err = newScopeWatcher(scopeConfig{
		DeviceID: cfg.DeviceID, Network: cfg.Network, Location: loc,
		ProbeInterval: cfg.ProbeInterval, BrowseInterval: cfg.DiscoveryInterval,
	}, mh, log.With("component", "scopes"))
	if err != nil {
		return err
	}

	hello := func() *hubv1.Hello {
		return &hubv1.Hello{
			AgentVersion: version.Version,
			Os:           goruntime.GOOS,
			Arch:         goruntime.GOARCH,
			Hostname:     hostname(),
			Capacity:     &hubv1.Resources{CpuMillis: cfg.CPUMillis, MemoryBytes: cfg.MemoryBytes, Pods: cfg.Pods},
			Labels:       deviceLabels(cfg),
			Addresses:    []string{cfg.AdvertiseAddress},
			Runtimes:     []string{supervisor.RuntimeWASM, supervisor.RuntimeProcess},
			Scopes:       watcher.Scopes(),
		}
	}
	cl, err = client.New(client.Config{
		Hub: cfg.Hub, HubCA: pool, Token: cfg.Token, TokenFile: cfg.TokenFile, DeviceID: cfg.DeviceID, Hello: hello,
		HeartbeatInterval: cfg.HeartbeatInterval,
		Scopes:            func() *hubv1.Scopes { return watcher.Scopes() },
		ScopesChanged:     watcher.Changed(),
		HubRTT:            func(rtt time.Duration) { watcher.HubRTT(rtt) },
		ContactInterval:   sup.FenceLease,
		// The pods run elsewhere now: none of them may keep running here.
		Decommissioned: func(string) {
			if err := sup.SetDesired(sup.Generation(), nil); err != nil {
				log.Error("stop workloads of a decommissioned device", "err", err)
			}
		},
	}, st, sup, tunnelHandler(sup, cfg.AdvertiseAddress, streamHandler(sup)), log.With("component", "hub-client"))
	if err != nil {
		return err
	}
	watcher.cl = cl

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		_ = sup.Run(ctx)
	}()
	wg.Go(func() {
		if err := mh.Run(ctx); err != nil {
			log.Error("device mesh stopped", "err", err)
		}
	})
	wg.Go(func() {
		if err := watcher.Run(ctx); err != nil {
			log.Error("scope watcher stopped", "err", err)
		}
	})
	// Give the pages of the binary that starting, pulling and compiling
	// touched back to the kernel whenever the agent goes idle.
	if !cfg.KeepIdlePages {
		wg.Go(func() { _ = workingset.Run(ctx, workingset.Config{}, log.With("component", "working-set")) })
	}
	wg.Go(func() { serveLocalAPI(ctx, cfg, st, cl, sup, watcher.Clusters, log.With("component", "local-api")) })
	log.Info("agent started", "hub", cfg.Hub, "dataDir", cfg.DataDir, "address", cfg.AdvertiseAddress, "version", version.Version, "meshPort", mh.Port())
	err = cl.Run(ctx)
	cancel()
	wg.Wait()
	return err
}

// streamHandler serves the hub's log requests from the container log files.
func streamHandler(sup *supervisor.Supervisor) client.StreamHandler {
	return func(ctx context.Context, req *hubv1.StreamRequest, send func(*hubv1.StreamFrame) error, _ func() (*hubv1.StreamFrame, error)) error {
		lo := req.GetLogs()
		if lo == nil {
			return errors.New("unsupported stream kind")
		}
		opts := logs.Options{
			Follow: lo.GetFollow(), TailLines: lo.GetTailLines(), Timestamps: lo.GetTimestamps(),
			Previous: lo.GetPrevious(), LimitBytes: lo.GetLimitBytes(),
		}
		if s := lo.GetSinceSeconds(); s > 0 {
			opts.Since = time.Now().Add(-time.Duration(s) * time.Second)
		}
		if t := lo.GetSinceTime(); t != nil {
			opts.Since = t.AsTime()
		}
		err := logs.Read(ctx, sup.LogFiles(req.GetWorkloadUid(), req.GetContainer()), opts, frameWriter{send: send})
		// Say what kubectl users know, as the kubelet does: not where the
		// device keeps its files.
		pod := req.GetWorkloadUid()
		if w, ok := sup.Workload(pod); ok {
			pod = w.GetNamespace() + "/" + w.GetName()
		}
		switch {
		case errors.Is(err, logs.ErrNoPrevious):
			return fmt.Errorf("previous terminated container %q in pod %s not found", req.GetContainer(), pod)
		case errors.Is(err, logs.ErrNoLogs):
			return fmt.Errorf("container %q in pod %s has not started yet", req.GetContainer(), pod)
		}
		return err
	}
}

type frameWriter struct {
	send   func(*hubv1.StreamFrame) error
	stderr bool
}

func (w frameWriter) Write(p []byte) (int, error) {
	const chunk = 32 << 10
	n := 0
	for len(p) > 0 {
		k := min(len(p), chunk)
		if err := w.send(&hubv1.StreamFrame{Data: append([]byte(nil), p[:k]...), Stderr: w.stderr}); err != nil {
			return n, err
		}
		n += k
		p = p[k:]
	}
	return n, nil
}

func deviceID(st *store.Store, configured string) (string, error) {
	id, err := st.Identity()
	if err != nil {
		return "", err
	}
	if configured != "" {
		return configured, nil
	}
	if id.DeviceID != "" {
		return id.DeviceID, nil
	}
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	base := strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '-':
			return r
		case r >= 'A' && r <= 'Z':
			return r + 'a' - 'A'
		}
		return '-'
	}, hostname())
	base = strings.Trim(base, "-")
	if len(base) > 50 {
		base = base[:50]
	}
	if base == "" {
		base = "device"
	}
	return base + "-" + hex.EncodeToString(b), nil
}

func deviceLabels(cfg Config) map[string]string {
	l := map[string]string{
		"kubernetes.io/os":       goruntime.GOOS,
		"kubernetes.io/arch":     goruntime.GOARCH,
		"kubernetes.io/hostname": hostname(),
	}
	for k, v := range cfg.Labels {
		l[k] = v
	}
	return l
}

func hostname() string {
	h, _ := os.Hostname()
	return h
}

// routeAddress is the local address the OS would use to reach the hub.
func routeAddress(hub string) string {
	c, err := net.Dial("udp", hub)
	if err != nil {
		return "127.0.0.1"
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).IP.String()
}

// totalMemory reads the machine's memory, or 1 GiB where it cannot.
func totalMemory() int64 {
	data, err := os.ReadFile("/proc/meminfo")
	if err == nil {
		var kb int64
		for _, line := range strings.Split(string(data), "\n") {
			if _, err := fmt.Sscanf(line, "MemTotal: %d kB", &kb); err == nil {
				return kb << 10
			}
		}
	}
	return 1 << 30
}

// sharedMemoryDir is a memory-backed directory for volumes that must not
// touch the disk when the agent cannot mount a tmpfs: /dev/shm where the
// device has one.
func sharedMemoryDir() string {
	if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() && goruntime.GOOS == "linux" {
		return "/dev/shm/edgefabric"
	}
	return ""
}

// sealStore has the store seal workloads (they carry secrets) with a key
// derived from the device's private key, creating that key on first start
// as the hub client would.
func sealStore(st *store.Store, deviceID string) error {
	id, err := st.Identity()
	if err != nil {
		return fmt.Errorf("read identity: %w", err)
	}
	if id.KeyDER == nil {
		key, err := identity.NewKey()
		if err != nil {
			return err
		}
		if id.KeyDER, err = x509.MarshalPKCS8PrivateKey(key); err != nil {
			return err
		}
		id.DeviceID = deviceID
		if err := st.SetIdentity(id); err != nil {
			return fmt.Errorf("save identity: %w", err)
		}
	}
	h := sha256.New()
	h.Write([]byte("edgefabric/store-seal/v1\x00"))
	h.Write(id.KeyDER)
	return st.SetSealKey(h.Sum(nil))
}
