// Package agent is edgefabric's device side. Run opens the agent's store,
// starts the image store and the WASM runtime, resumes the workloads it was
// running, and keeps the device joined to the hub. cmd/edgeagent builds the
// Config from flags or a config file.
//
// Nothing here may import Kubernetes, controller-runtime or virtual-kubelet:
// the agent stays one small binary (a test enforces it).
package agent

import (
	"cmp"
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
	"slices"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/edgefabric/edgefabric/pkg/agent/client"
	"github.com/edgefabric/edgefabric/pkg/agent/clock"
	"github.com/edgefabric/edgefabric/pkg/agent/image"
	"github.com/edgefabric/edgefabric/pkg/agent/logs"
	"github.com/edgefabric/edgefabric/pkg/agent/mesh"
	"github.com/edgefabric/edgefabric/pkg/agent/runtime/process"
	"github.com/edgefabric/edgefabric/pkg/agent/runtime/wasm"
	"github.com/edgefabric/edgefabric/pkg/agent/scopewatch"
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
	// LANInterval is how often the device's LAN facts (subnet, gateway) are
	// read again, to notice that it moved to another LAN; zero means 1 min.
	LANInterval time.Duration `json:"lanInterval" yaml:"lanInterval"`
	// ImageCacheBytes is the image cache's budget (--image-cache-size):
	// past it, the images no desired workload uses are removed, least
	// recently used first, and no image larger is pulled. Zero means
	// DefaultImageCacheBytes.
	ImageCacheBytes int64 `json:"imageCacheBytes" yaml:"imageCacheBytes"`
	// ImagePullProgressTimeout gives up on a pull that receives nothing
	// from the registry for this long; zero means 1 minute.
	ImagePullProgressTimeout time.Duration `json:"imagePullProgressTimeout" yaml:"imagePullProgressTimeout"`
	// ImagePullTimeout bounds a whole pull; zero means no bound but the
	// progress timeout.
	ImagePullTimeout time.Duration `json:"imagePullTimeout" yaml:"imagePullTimeout"`
	// ImageMaxUnusedAge removes the images no desired workload has used
	// for this long; zero means DefaultImageMaxUnusedAge.
	ImageMaxUnusedAge time.Duration `json:"imageMaxUnusedAge" yaml:"imageMaxUnusedAge"`
	// ImageGCInterval is how often the image cache is collected (also
	// whenever a pull takes it past its budget or finds the disk full);
	// zero means 5 minutes.
	ImageGCInterval time.Duration `json:"imageGCInterval" yaml:"imageGCInterval"`
	// KeepIdlePages keeps the binary's and compiled modules' pages resident
	// when the agent goes idle; by default they are given back to the kernel
	// (see pkg/agent/workingset) and read back from storage on use.
	KeepIdlePages bool `json:"keepIdlePages" yaml:"keepIdlePages"`
	// WASMDefaultMemoryPercent is the memory limit of a WASM container that
	// sets none, in percent of MemoryBytes (the memory offered to the
	// fabric): a module that grows its memory without end is OOMKilled at
	// that size, and the agent's own memory is safe. Zero means
	// DefaultWASMMemoryPercent; 100 lets one module have all of it.
	WASMDefaultMemoryPercent int `json:"wasmDefaultMemoryPercent" yaml:"wasmDefaultMemoryPercent"`
	// NativeWorkloads says where native containers (the process runtime)
	// run (--native-workloads): NativeIsolated (empty means it) only where
	// the runtime isolates them, in their sandbox (Linux, the agent as
	// root); NativeUnisolated also elsewhere, as the agent's user, able to
	// read whatever the agent can, its store and key included; NativeOff
	// never. A device that does not run them does not announce the runtime.
	NativeWorkloads string `json:"nativeWorkloads" yaml:"nativeWorkloads"`
	// NoRootImages refuses native containers that would run as root (uid 0)
	// (--allow-root-images=false); by default they run as root in their
	// sandbox, as under Docker.
	NoRootImages bool `json:"noRootImages" yaml:"noRootImages"`
	// NativeUserNS says whether isolated native containers run in user
	// namespaces, their root an unprivileged range of the device's uids
	// (--native-userns): process.UserNSAuto (empty means it) where the
	// kernel allows it, process.UserNSRequired the same but the agent does
	// not start where it does not, process.UserNSOff never.
	NativeUserNS string `json:"nativeUserNS" yaml:"nativeUserNS"`
	// UserNSBase is the first host uid (and gid) of the containers' ranges
	// (--userns-base); zero means process.DefaultUserNSBase.
	UserNSBase uint32 `json:"userNSBase" yaml:"userNSBase"`
	// UserNSRanges is how many ranges of process.UserNSSize ids there are,
	// one per running native container (--userns-ranges); zero means
	// process.DefaultUserNSRanges.
	UserNSRanges int `json:"userNSRanges" yaml:"userNSRanges"`
	// ReservedPorts are TCP ports of the device's own services (the debug
	// server, say) that kubectl port-forward never reaches, not even for a
	// pod that declares one. The mesh port is always reserved; nil means it
	// alone.
	ReservedPorts []int32 `json:"-" yaml:"-"`
}

// DefaultWASMMemoryPercent is the default of Config.WASMDefaultMemoryPercent:
// a quarter of the device's memory.
const DefaultWASMMemoryPercent = 25

// wasmDefaultMemoryLimit is the memory limit of a WASM container that sets none.
func (c Config) wasmDefaultMemoryLimit() int64 {
	return c.MemoryBytes * int64(cmp.Or(c.WASMDefaultMemoryPercent, DefaultWASMMemoryPercent)) / 100
}

// Values of Config.NativeWorkloads.
const (
	NativeIsolated   = "isolated"
	NativeUnisolated = "unisolated"
	NativeOff        = "off"
)

// processPolicy is what the configuration lets native containers do.
func (c Config) processPolicy() supervisor.ProcessPolicy {
	return supervisor.ProcessPolicy{
		Off:        c.NativeWorkloads == NativeOff,
		Unisolated: c.NativeWorkloads == NativeUnisolated,
		NoRoot:     c.NoRootImages,
	}
}

// processConfig is the process runtime's configuration.
func (c Config) processConfig() process.Config {
	return process.Config{
		StateDir: filepath.Join(c.DataDir, "containers"),
		UserNS:   c.NativeUserNS, UserNSBase: c.UserNSBase, UserNSRanges: c.UserNSRanges,
	}
}

// Defaults of the image cache.
const (
	DefaultImageCacheBytes   = 2 << 30
	DefaultImageMaxUnusedAge = 7 * 24 * time.Hour
	DefaultImageGCInterval   = 5 * time.Minute
)

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
	if c.ImageCacheBytes == 0 {
		c.ImageCacheBytes = DefaultImageCacheBytes
	}
	if c.ImageMaxUnusedAge == 0 {
		c.ImageMaxUnusedAge = DefaultImageMaxUnusedAge
	}
	if c.ImageGCInterval == 0 {
		c.ImageGCInterval = DefaultImageGCInterval
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
	if c.WASMDefaultMemoryPercent < 0 || c.WASMDefaultMemoryPercent > 100 {
		errs = append(errs, fmt.Errorf("default WASM memory limit: %d%% of the device's memory is not between 1 and 100", c.WASMDefaultMemoryPercent))
	}
	if c.LogMaxBytes < 0 || c.LogMaxFiles < 0 {
		errs = append(errs, fmt.Errorf("log rotation: max bytes %d and max files %d must not be negative", c.LogMaxBytes, c.LogMaxFiles))
	}
	if c.RestartBackoff < 0 || c.HeartbeatInterval < 0 || c.ProbeInterval < 0 || c.LANInterval < 0 || c.DiscoveryInterval < 0 {
		errs = append(errs, errors.New("restart back-off, heartbeat, probe, LAN and discovery intervals must not be negative"))
	}
	if c.ImageCacheBytes < 0 || c.ImagePullProgressTimeout < 0 || c.ImagePullTimeout < 0 || c.ImageMaxUnusedAge < 0 || c.ImageGCInterval < 0 {
		errs = append(errs, errors.New("image cache size, pull timeouts, unused age and GC interval must not be negative"))
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
	switch c.NativeWorkloads {
	case "", NativeIsolated, NativeUnisolated, NativeOff:
	default:
		errs = append(errs, fmt.Errorf("native workloads %q: want %s, %s or %s", c.NativeWorkloads, NativeIsolated, NativeUnisolated, NativeOff))
	}
	if err := c.processConfig().Validate(); err != nil {
		errs = append(errs, err)
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
	if err := sealStore(st, filepath.Join(cfg.DataDir, "seal.key")); err != nil {
		return err
	}
	if cfg.AdvertiseAddress == "" {
		cfg.AdvertiseAddress = routeAddress(cfg.Hub)
	}

	images, err := image.New(image.Config{
		Dir: filepath.Join(cfg.DataDir, "images"), InsecureRegistries: cfg.InsecureRegistries,
		Platform: goruntime.GOOS + "/" + goruntime.GOARCH,
		MaxBytes: cfg.ImageCacheBytes, ProgressTimeout: cfg.ImagePullProgressTimeout, PullTimeout: cfg.ImagePullTimeout,
		MaxUnusedAge: cfg.ImageMaxUnusedAge,
	}, log.With("component", "images"))
	if err != nil {
		return err
	}
	rt, err := wasm.New(ctx, wasm.Config{CacheDir: filepath.Join(cfg.DataDir, "wasm-cache"), DefaultMemoryLimitBytes: cfg.wasmDefaultMemoryLimit()}, log.With("component", "wasm"))
	if err != nil {
		return err
	}
	defer rt.Close(context.WithoutCancel(ctx))
	prt, err := process.New(cfg.processConfig(), log.With("component", "process"))
	if err != nil {
		return err
	}
	defer prt.Close()

	// The values the parts share are made first, and every part after the
	// parts and values it needs: the supervisor (fencing by the contact with
	// the hub, asking for a resync once it fenced), the mesh (proving the
	// device by its credentials, sending its coordinate), the scope watcher
	// (probing over the mesh once the device joined), and last the hub
	// client, which records the contact and the credentials and drives the
	// supervisor.
	clk := clock.Real{}
	contact := client.NewContact(clk)
	creds := client.NewCredentials()
	viv, err := proximity.NewClient(proximity.Config{})
	if err != nil {
		return err
	}

	sup := supervisor.New(supervisor.Config{
		LogDir: filepath.Join(cfg.DataDir, "logs"), PodIP: cfg.AdvertiseAddress, BackoffBase: cfg.RestartBackoff,
		LogMaxBytes: cfg.LogMaxBytes, LogMaxFiles: cfg.LogMaxFiles,
		VolumeDir: filepath.Join(cfg.DataDir, "volumes"), SharedMemoryDir: sharedMemoryDir(),
		LastContact: contact.Last,
		// Fenced while the session looked up: it was not (no word from
		// the hub for too long). A new session brings the full desired
		// state, which alone starts fenced workloads again.
		Fenced: contact.Resync,
		Clock:  clk,
	}, images, supervisor.Runtimes{
		supervisor.RuntimeWASM:    supervisor.WASM(rt),
		supervisor.RuntimeProcess: supervisor.Process(prt, cfg.processPolicy()),
	}, st, log.With("component", "supervisor"))
	runtimes := []string{supervisor.RuntimeWASM}
	if cfg.processPolicy().Offers(prt.Isolated()) {
		runtimes = append(runtimes, supervisor.RuntimeProcess)
	} else {
		log.Info("native containers not offered", "nativeWorkloads", cfg.NativeWorkloads, "isolated", prt.Isolated())
	}

	mh, err := mesh.New(mesh.Config{
		Listen: cfg.MeshListen,
		Identity: func() (mesh.Identity, bool) {
			cert, ca, account, ok := creds.Get()
			return mesh.Identity{Certificate: cert, CA: ca, Account: account, DeviceID: cfg.DeviceID}, ok
		},
		Coordinate: func() *proximity.Coordinate {
			c := viv.Coordinate()
			return &c
		},
	}, log.With("component", "mesh"))
	if err != nil {
		return err
	}
	loc, _ := cfg.location() // checked by Validate
	watcher, err := scopewatch.New(scopewatch.Config{
		DeviceID: cfg.DeviceID, Network: cfg.Network, Location: loc,
		ProbeInterval: cfg.ProbeInterval, BrowseInterval: cfg.DiscoveryInterval, LANInterval: cfg.LANInterval,
		Vivaldi: viv,
	}, mh, creds, log.With("component", "scopes"))
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
			Runtimes:     runtimes,
			Scopes:       watcher.Scopes(),
		}
	}
	reserved := append(slices.Clone(cfg.ReservedPorts), int32(mh.Port()))
	cl, err := client.New(client.Config{
		Hub: cfg.Hub, HubCA: pool, Token: cfg.Token, TokenFile: cfg.TokenFile, DeviceID: cfg.DeviceID, Hello: hello,
		HeartbeatInterval: cfg.HeartbeatInterval,
		Clock:             clk,
		Contact:           contact,
		Credentials:       creds,
		Scopes:            watcher.Scopes,
		ScopesChanged:     watcher.Changed(),
		HubRTT:            watcher.HubRTT,
		ContactInterval:   sup.FenceLease,
		// The pods run elsewhere now: none of them may keep running here.
		Decommissioned: func(string) {
			if err := sup.SetDesired(sup.Generation(), nil); err != nil {
				log.Error("stop workloads of a decommissioned device", "err", err)
			}
		},
	}, st, sup, tunnelHandler(sup, cfg.AdvertiseAddress, func() []int32 { return reserved }, streamHandler(sup)), log.With("component", "hub-client"))
	if err != nil {
		return err
	}

	// The parts run until ctx ends or one of them fails; Run returns once
	// every one has ended, with the first failure.
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return sup.Run(ctx) })
	g.Go(func() error {
		if err := mh.Run(ctx); err != nil {
			return fmt.Errorf("device mesh: %w", err)
		}
		return nil
	})
	g.Go(func() error {
		if err := watcher.Run(ctx); err != nil {
			return fmt.Errorf("scope watcher: %w", err)
		}
		return nil
	})
	// Give the pages of the binary that starting, pulling and compiling
	// touched back to the kernel whenever the agent goes idle.
	if !cfg.KeepIdlePages {
		g.Go(func() error { return workingset.Run(ctx, workingset.Config{}, log.With("component", "working-set")) })
	}
	// The image cache's GC keeps what the desired workloads need: known
	// once the stored ones were resumed.
	g.Go(func() error {
		select {
		case <-sup.Resumed():
			return images.RunGC(ctx, cfg.ImageGCInterval, sup.ImagesInUse)
		case <-ctx.Done():
			return nil
		}
	})
	g.Go(func() error {
		serveLocalAPI(ctx, cfg, st, cl, sup, watcher.Clusters, log.With("component", "local-api"))
		return nil
	})
	g.Go(func() error { return cl.Run(ctx) })
	log.Info("agent started", "hub", cfg.Hub, "dataDir", cfg.DataDir, "address", cfg.AdvertiseAddress, "version", version.Version, "meshPort", mh.Port())
	return g.Wait()
}

var _ scopewatch.Credentials = (*client.Credentials)(nil)

// streamHandler serves the hub's log requests from the container log files.
func streamHandler(sup *supervisor.Supervisor) client.StreamHandler {
	return func(ctx context.Context, req *hubv1.StreamRequest, send func(*hubv1.StreamFrame) error, _ func() (*hubv1.StreamFrame, error)) error {
		lo := req.GetLogs()
		if lo == nil {
			return errors.New("unsupported stream kind")
		}
		opts, err := logs.OptionsFrom(lo, time.Now())
		if err != nil {
			return err
		}
		err = logs.Read(ctx, sup.LogFiles(req.GetWorkloadUid(), req.GetContainer()), opts, frameWriter{send: send})
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

// sealStore has the store seal workloads (they carry secrets) with the key
// in keyPath, beside the store and never in it (made on first start). An
// older agent sealed them with a key derived from the device's private key,
// which the store itself holds: that key is given as a legacy key, so those
// records are sealed again with the new one.
func sealStore(st *store.Store, keyPath string) error {
	key, err := store.LoadSealKey(keyPath)
	if err != nil {
		return err
	}
	id, err := st.Identity()
	if err != nil {
		return fmt.Errorf("read identity: %w", err)
	}
	var legacy [][]byte
	if id.KeyDER != nil {
		h := sha256.New()
		h.Write([]byte("edgefabric/store-seal/v1\x00"))
		h.Write(id.KeyDER)
		legacy = append(legacy, h.Sum(nil))
	}
	return st.SetSealKey(key, legacy...)
}
