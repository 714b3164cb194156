// Package provider is the cloud side of edgefabric: it runs the hub agents dial
// into, the fabric of devices, one virtual-kubelet node per edge cluster and
// the kubelet API. cmd/provider builds a Config and calls Run.
package provider

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	ctrlclient "sigs.k8s.io/controller-runtime/pkg/client"

	efv1 "github.com/edgefabric/edgefabric/pkg/apis/edgefabric/v1alpha1"
	"github.com/edgefabric/edgefabric/pkg/identity"
	"github.com/edgefabric/edgefabric/pkg/provider/enrollment"
	"github.com/edgefabric/edgefabric/pkg/provider/fabric"
	"github.com/edgefabric/edgefabric/pkg/provider/fleet"
	"github.com/edgefabric/edgefabric/pkg/provider/hub"
	"github.com/edgefabric/edgefabric/pkg/provider/kubeletapi"
	"github.com/edgefabric/edgefabric/pkg/provider/node"
	"github.com/edgefabric/edgefabric/pkg/provider/revocation"
	"github.com/edgefabric/edgefabric/pkg/scopes"
	"github.com/edgefabric/edgefabric/pkg/scopes/proximity"
)

// Config configures the provider. The zero value of each field is documented.
type Config struct {
	// Namespace holds the CA Secret and the bootstrap-token Secrets.
	// Empty means "edgefabric-system".
	Namespace string
	// StateDir, when set, keeps the CA in ca.crt and ca.key there instead of
	// in a Secret (useful out of cluster and for the local fabric).
	StateDir string
	// HubListen is the hub's listen address. Empty means ":7443".
	HubListen string
	// HubHosts are the names and IPs agents dial the hub by (the serving
	// certificate's SANs). Empty means localhost and 127.0.0.1.
	HubHosts []string
	// KubeletListen is the kubelet API's listen address. Empty means ":10250".
	KubeletListen string
	// NodeIP is published as the nodes' InternalIP: the API server reaches the
	// kubelet API there. Required.
	NodeIP string
	// Version is reported as the kubelet version of the nodes.
	Version string
	// CertTTL is the lifetime of device certificates. Zero means 24 hours.
	CertTTL time.Duration
	// RenewalGrace is how long after its certificate expired a device may
	// renew it with its own key; past it, it joins again with a bootstrap
	// token. Zero means hub.DefaultRenewalGrace (30 days); negative means
	// none.
	RenewalGrace time.Duration
	// TokenTTL is how long a bootstrap token whose Secret sets no
	// expiration lasts from the Secret's creation. Zero means
	// DefaultTokenTTL (24 hours).
	TokenTTL time.Duration
	// BootstrapLimits bounds how often devices may call Bootstrap, per
	// source address and in all; the zero value has the hub's defaults.
	BootstrapLimits hub.BootstrapLimits
	// Workers per node for pod sync. Zero means 8.
	Workers int
	// Scopes are the scopes whose clusters are published as virtual nodes.
	// Nil means network and account.
	Scopes []scopes.Scope
	// ProximityRTT and ProximityKm are the radius of proximity clusters, in
	// estimated round-trip time or in kilometres; used only when Scopes
	// holds proximity, and then at least one must be set.
	ProximityRTT time.Duration
	ProximityKm  float64
	// ClusterDissolveGrace is how long the node of a cluster that no longer
	// forms stays before it is deleted (once no pods are left on it). Zero
	// means 5 minutes.
	ClusterDissolveGrace time.Duration
	// DeviceLossGrace is how long a pod's device may be offline before the
	// pod is placed on another device (pods may say otherwise with the
	// edgefabric.io/device-loss-grace annotation). Zero means 60 s.
	DeviceLossGrace time.Duration
	// DeviceGCAfter is how long a device may be offline before it is
	// forgotten: dropped from the fabric and its EdgeDevice deleted (it
	// appears again if it comes back). Zero never forgets.
	DeviceGCAfter time.Duration
	// RESTConfig connects the controller-runtime client that writes the
	// EdgeDevice objects (the CRD must be installed); nil writes none.
	RESTConfig *rest.Config
	// HealthListen, when set, serves /healthz and /readyz on this address
	// (plain HTTP). Empty means no health endpoint.
	HealthListen string
	// LeaderElection lets replicas share the work as leader and standbys.
	// The zero value is off: this process serves alone.
	LeaderElection LeaderElection
	// KubeletAuth guards the kubelet API (shared port and nodes' ports). The
	// zero value authenticates by bearer token only and authorizes every
	// request by SubjectAccessReview.
	KubeletAuth KubeletAuth
}

// KubeletAuth is how the kubelet API authenticates and authorizes requests,
// as a kubelet in webhook mode: by client certificate (ClientCA) or bearer
// token (TokenReview), then SubjectAccessReview on nodes/<subresource>.
type KubeletAuth struct {
	// Disabled serves the kubelet API to anyone who reaches it: for local
	// debugging only. False (the default) guards it.
	Disabled bool
	// ClientCA is a PEM bundle of the CAs that sign accepted client
	// certificates (the API server's kubelet client certificate). Empty
	// accepts no client certificate, so the API server's node proxy (kubectl
	// logs/exec) fails unless it authenticates by token.
	ClientCA []byte
}

// Default fills in the defaults of unset fields.
func (c *Config) Default() {
	if c.Namespace == "" {
		c.Namespace = "edgefabric-system"
	}
	if c.HubListen == "" {
		c.HubListen = ":7443"
	}
	if c.KubeletListen == "" {
		c.KubeletListen = ":10250"
	}
	if c.Version == "" {
		c.Version = "dev"
	}
	if c.LeaderElection.Enabled {
		c.LeaderElection.defaults()
	}
}

// Validate reports a configuration that cannot work.
func (c Config) Validate() error {
	if c.NodeIP == "" {
		return errors.New("node IP is required (the address the API server reaches the kubelet API on)")
	}
	if net.ParseIP(c.NodeIP) == nil {
		return fmt.Errorf("node IP %q is not an IP address", c.NodeIP)
	}
	addrs := []string{c.HubListen, c.KubeletListen}
	if c.HealthListen != "" {
		addrs = append(addrs, c.HealthListen)
	}
	for _, a := range addrs {
		if _, _, err := net.SplitHostPort(a); err != nil {
			return fmt.Errorf("listen address %q: %w", a, err)
		}
	}
	if err := c.KubeletAuth.validate(); err != nil {
		return err
	}
	if err := c.BootstrapLimits.Validate(); err != nil {
		return err
	}
	return c.LeaderElection.validate()
}

func (a KubeletAuth) validate() error {
	if a.Disabled || len(a.ClientCA) == 0 {
		return nil
	}
	if !x509.NewCertPool().AppendCertsFromPEM(a.ClientCA) {
		return errors.New("kubelet client CA: no PEM certificate in it")
	}
	return nil
}

// Run serves until ctx ends and returns once everything has stopped. A
// cancelled context is a clean stop and returns nil. With leader election on,
// it serves only while this replica leads, and returns an error when it stops
// leading before ctx ends (the process should exit; it restarts as a standby).
func Run(ctx context.Context, cfg Config, client kubernetes.Interface, log *slog.Logger) error {
	cfg.Default()
	if err := cfg.Validate(); err != nil {
		return err
	}
	h := newHealth()
	if cfg.HealthListen != "" {
		lis, err := net.Listen("tcp", cfg.HealthListen)
		if err != nil {
			return fmt.Errorf("health listen: %w", err)
		}
		hctx, stop := context.WithCancel(ctx)
		served := make(chan error, 1)
		go func() { served <- serveHealth(hctx, lis, h, log.With("component", "health")) }()
		defer func() {
			stop()
			if err := <-served; err != nil {
				log.Warn("health endpoint stopped", "err", err)
			}
		}()
	}
	if !cfg.LeaderElection.Enabled {
		return serve(ctx, cfg, client, log, h)
	}
	h.set("standby")
	return lead(ctx, cfg, client, log, func(ctx context.Context) error {
		err := serve(ctx, cfg, client, log, h)
		h.set("stopping")
		return err
	})
}

// serve runs the hub, the nodes and the kubelet API until ctx ends, reporting
// through h.
func serve(ctx context.Context, cfg Config, client kubernetes.Interface, log *slog.Logger, hl *health) error {
	ca, err := loadOrCreateCA(ctx, cfg, client)
	if err != nil {
		return fmt.Errorf("certificate authority: %w", err)
	}
	hubLis, err := net.Listen("tcp", cfg.HubListen)
	if err != nil {
		return fmt.Errorf("hub listen: %w", err)
	}
	defer hubLis.Close()
	kLis, err := net.Listen("tcp", cfg.KubeletListen)
	if err != nil {
		return fmt.Errorf("kubelet API listen: %w", err)
	}
	defer kLis.Close()
	khost, kport, _ := net.SplitHostPort(kLis.Addr().String())
	port, _ := strconv.Atoi(kport)
	ktls, err := kubeletTLS(ca, cfg.NodeIP)
	if err != nil {
		return err
	}
	var guard *kubeletapi.Guard
	if cfg.KubeletAuth.Disabled {
		log.Warn("kubelet API authentication and authorization are off: anyone who reaches it may exec into pods")
	} else {
		if guard, err = kubeletapi.NewGuard(kubeletapi.GuardConfig{ClientCA: cfg.KubeletAuth.ClientCA, Client: client},
			log.With("component", "kubelet-api")); err != nil {
			return err
		}
		// The x509 authenticator verifies the certificate; the handshake
		// only asks for it, so a bad one gets a 401 that says why.
		ktls.ClientAuth = tls.RequestClientCert
		if len(cfg.KubeletAuth.ClientCA) == 0 {
			log.Warn("kubelet API accepts no client certificate: without a kubelet client CA the API server's node proxy (kubectl logs, exec) is refused")
		} else {
			log.Info("kubelet API guarded", "clientCertificates", true, "bearerTokens", true)
		}
	}

	revs, err := openRevocations(ctx, cfg, client)
	if err != nil {
		return err
	}
	enrolled, err := openEnrollments(ctx, cfg, client)
	if err != nil {
		return err
	}
	grace := cfg.RenewalGrace
	switch {
	case grace == 0:
		grace = hub.DefaultRenewalGrace
	case grace < 0:
		grace = 0
	}
	tokens := NewSecretTokens(client, cfg.Namespace, cfg.TokenTTL, nil)

	fab := fabric.New(log.With("component", "fabric"))
	var fw *fleet.Writer
	var deletions cache.Cache
	changed := func() {
		if fw != nil {
			fw.Changed()
		}
	}
	mgr, err := node.NewManager(node.Config{
		NodeIP: cfg.NodeIP, KubeletPort: int32(port), KubeletTLS: ktls, KubeletHost: khost, KubeletGuard: guard,
		Version: cfg.Version, Workers: cfg.Workers,
		Clusters: fabric.ClusterConfig{
			Scopes:    cfg.Scopes,
			Proximity: proximity.GroupConfig{RTT: cfg.ProximityRTT, Km: cfg.ProximityKm},
		},
		DissolveGrace:   cfg.ClusterDissolveGrace,
		DeviceLossGrace: cfg.DeviceLossGrace,
		Changed:         changed,
	}, client, fab, log.With("component", "nodes"))
	if err != nil {
		return err
	}
	if cfg.RESTConfig != nil {
		scheme := runtime.NewScheme()
		if err := efv1.AddToScheme(scheme); err != nil {
			return err
		}
		c, err := ctrlclient.New(cfg.RESTConfig, ctrlclient.Options{Scheme: scheme})
		if err != nil {
			return fmt.Errorf("EdgeDevice client: %w", err)
		}
		certTTL := cfg.CertTTL
		if certTTL == 0 {
			certTTL = 24 * time.Hour
		}
		if fw, err = fleet.New(fleet.Config{
			Devices: fab.AllDevices, Clusters: mgr.Clusters, NodeOf: mgr.NodeOf,
			GCAfter: cfg.DeviceGCAfter,
			Forget: func(account, id string) {
				fab.Drop(identity.Device{Account: account, ID: id}, false)
				mgr.DeviceRemoved(account, id, "was forgotten (offline longer than the device GC period)")
			},
			Decommission: func(ctx context.Context, account, id string) error {
				d := identity.Device{Account: account, ID: id}
				// Revoked first: the session Drop ends is refused from then on.
				// The revocation lasts as long as a revoked certificate could
				// still be renewed.
				if _, err := revs.Revoke(ctx, d, time.Now(), certTTL+identity.Backdate+grace); err != nil {
					return err
				}
				fab.Drop(d, true)
				mgr.DeviceRemoved(account, id, "was decommissioned")
				return nil
			},
		}, c, log.With("component", "fleet")); err != nil {
			return err
		}
		if deletions, err = watchDeletions(ctx, cfg.RESTConfig, scheme, fw); err != nil {
			log.Warn("EdgeDevice deletions are not watched; deleting one does not decommission its device", "err", err)
		}
	}
	h, err := hub.New(hub.Config{
		CA: ca, Hosts: cfg.HubHosts, Tokens: tokens, CertTTL: cfg.CertTTL,
		Revocations: revs, Enrollments: enrolled, RenewalGrace: grace,
		BootstrapLimits: cfg.BootstrapLimits,
	}, fab, log.With("component", "hub"))
	if err != nil {
		return err
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, 7)
	start := func(name string, fn func() error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := fn(); err != nil && ctx.Err() == nil {
				errs <- fmt.Errorf("%s: %w", name, err)
				cancel()
			}
		}()
	}
	start("nodes", func() error { return mgr.Run(ctx) })
	start("bootstrap tokens", func() error { return tokens.Run(ctx) })
	start("hub", func() error { return h.Serve(ctx, hubLis) })
	if fw != nil {
		start("fleet", func() error { return fw.Run(ctx) })
	}
	if deletions != nil {
		start("EdgeDevice watch", func() error { return deletions.Start(ctx) })
	}
	start("kubelet API", func() error {
		return kubeletapi.Serve(ctx, kLis, ktls, guard.Wrap(kubeletapi.AllNodes, kubeletapi.Handler(mgr)), log.With("component", "kubelet-api"))
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		select {
		case <-fab.Ready():
			hl.set("serving")
		case <-ctx.Done():
		}
	}()
	log.Info("provider started", "hub", hubLis.Addr().String(), "kubeletAPI", kLis.Addr().String(), "nodeIP", cfg.NodeIP)
	wg.Wait()
	hl.set("stopping")
	close(errs)
	return <-errs
}

func kubeletTLS(ca *identity.CA, nodeIP string) (*tls.Config, error) {
	key, err := identity.NewKey()
	if err != nil {
		return nil, err
	}
	cert, err := ca.SignServer(key, "edgefabric-kubelet", []string{nodeIP, "localhost"}, time.Now(), 365*24*time.Hour)
	if err != nil {
		return nil, err
	}
	return &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{{Certificate: [][]byte{cert.Raw, ca.Cert.Raw}, PrivateKey: key, Leaf: cert}},
	}, nil
}

// RevocationsName is the ConfigMap, in the provider's namespace, that keeps
// the decommissioned devices (revocations.json in --state-dir instead).
const RevocationsName = "edgefabric-revocations"

func openRevocations(ctx context.Context, cfg Config, client kubernetes.Interface) (*revocation.Store, error) {
	var b revocation.Backend = revocation.ConfigMap{Client: client, Namespace: cfg.Namespace, Name: RevocationsName}
	if cfg.StateDir != "" {
		b = revocation.File{Path: filepath.Join(cfg.StateDir, "revocations.json")}
	}
	return revocation.Open(ctx, b, time.Now())
}

// EnrollmentsName is the first of the ConfigMaps, in the provider's
// namespace, that keep the enrolled devices (enrollments.json in
// --state-dir instead); the others are EnrollmentsName-1 to
// EnrollmentsName-(EnrollmentShards-1).
const EnrollmentsName = "edgefabric-enrollments"

// EnrollmentShards is how many ConfigMaps the enrolled devices are spread
// over: each record takes about 150 bytes and a ConfigMap at most 1 MiB,
// so some 6,000 devices fit in one and about 100,000 in all.
const EnrollmentShards = 16

// EnrollmentsKey is the key of the records in those ConfigMaps.
const EnrollmentsKey = "enrollments.json"

// EnrollmentsShardName is the name of the ConfigMap of shard i.
func EnrollmentsShardName(i int) string {
	if i == 0 {
		return EnrollmentsName // as before shards: its records move where they belong
	}
	return fmt.Sprintf("%s-%d", EnrollmentsName, i)
}

func openEnrollments(ctx context.Context, cfg Config, client kubernetes.Interface) (*enrollment.Store, error) {
	if cfg.StateDir != "" {
		return enrollment.Open(ctx, revocation.File{Path: filepath.Join(cfg.StateDir, EnrollmentsKey)}, time.Now())
	}
	shards := make([]revocation.Backend, EnrollmentShards)
	for i := range shards {
		shards[i] = revocation.ConfigMap{Client: client, Namespace: cfg.Namespace, Name: EnrollmentsShardName(i), Key: EnrollmentsKey}
	}
	return enrollment.OpenSharded(ctx, shards, time.Now())
}

// watchDeletions returns a cache whose EdgeDevice informer tells fw of every
// deleted object once the cache is started.
func watchDeletions(ctx context.Context, rc *rest.Config, scheme *runtime.Scheme, fw *fleet.Writer) (cache.Cache, error) {
	c, err := cache.New(rc, cache.Options{Scheme: scheme})
	if err != nil {
		return nil, err
	}
	inf, err := c.GetInformer(ctx, &efv1.EdgeDevice{}, cache.BlockUntilSynced(false))
	if err != nil {
		return nil, err
	}
	_, err = inf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		DeleteFunc: func(obj any) {
			if tomb, ok := obj.(toolscache.DeletedFinalStateUnknown); ok {
				obj = tomb.Obj
			}
			if d, ok := obj.(*efv1.EdgeDevice); ok {
				fw.Deleted(d)
			}
		},
	})
	if err != nil {
		return nil, err
	}
	return c, nil
}
