package provider

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync/atomic"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
)

// LeaderElection makes replicas of the provider elect one leader through a
// Lease in the provider's namespace. Only the leader serves: it publishes the
// nodes, runs the hub and the kubelet API; the others wait as hot standbys,
// report not ready (so a Service sends agents to the leader only) and take
// over when the leader's lease runs out or is released.
type LeaderElection struct {
	// Enabled turns leader election on. False means this process serves at
	// once, alone (the local default).
	Enabled bool
	// Name of the Lease. Empty means "edgefabric-provider".
	Name string
	// Identity of this replica in the Lease. Empty means the host name and a
	// random suffix.
	Identity string
	// LeaseDuration is how long standbys wait after the last renewal before
	// taking over. Zero means 15 seconds.
	LeaseDuration time.Duration
	// RenewDeadline is how long the leader keeps trying to renew before it
	// gives up leading. Zero means 10 seconds.
	RenewDeadline time.Duration
	// RetryPeriod is how often candidates try to acquire or renew. Zero
	// means 2 seconds.
	RetryPeriod time.Duration
}

func (l *LeaderElection) defaults() {
	if l.Name == "" {
		l.Name = "edgefabric-provider"
	}
	if l.Identity == "" {
		host, _ := os.Hostname()
		b := make([]byte, 4)
		_, _ = rand.Read(b)
		l.Identity = host + "_" + hex.EncodeToString(b)
	}
	if l.LeaseDuration == 0 {
		l.LeaseDuration = 15 * time.Second
	}
	if l.RenewDeadline == 0 {
		l.RenewDeadline = 10 * time.Second
	}
	if l.RetryPeriod == 0 {
		l.RetryPeriod = 2 * time.Second
	}
}

func (l LeaderElection) validate() error {
	if !l.Enabled {
		return nil
	}
	if l.LeaseDuration <= l.RenewDeadline {
		return fmt.Errorf("leader election: lease duration %s must be longer than the renew deadline %s", l.LeaseDuration, l.RenewDeadline)
	}
	if l.RenewDeadline <= l.RetryPeriod {
		return fmt.Errorf("leader election: renew deadline %s must be longer than the retry period %s", l.RenewDeadline, l.RetryPeriod)
	}
	return nil
}

// errLostLeadership ends a leader whose lease was taken or could not be
// renewed: it stops serving and exits, and its restart becomes a standby.
var errLostLeadership = errors.New("lost leadership")

// lead campaigns for the Lease and runs serve while this replica leads. It
// returns nil when ctx ends, serve's error when serving fails (releasing the
// Lease), errLostLeadership when the Lease is lost, and only after serve has
// returned.
func lead(ctx context.Context, cfg Config, client kubernetes.Interface, log *slog.Logger, serve func(context.Context) error) error {
	le := cfg.LeaderElection
	lock, err := resourcelock.New(resourcelock.LeasesResourceLock, cfg.Namespace, le.Name,
		client.CoreV1(), client.CoordinationV1(), resourcelock.ResourceLockConfig{Identity: le.Identity})
	if err != nil {
		return fmt.Errorf("leader election lock: %w", err)
	}
	served := make(chan error, 1)
	wrote := &writtenLock{Interface: lock}
	// Ending the election releases the Lease: when serving fails, a standby
	// takes over at once instead of after the lease runs out.
	ectx, stopElection := context.WithCancel(ctx)
	defer stopElection()
	elector, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
		Lock:            wrote,
		Name:            le.Identity,
		LeaseDuration:   le.LeaseDuration,
		RenewDeadline:   le.RenewDeadline,
		RetryPeriod:     le.RetryPeriod,
		ReleaseOnCancel: true,
		Callbacks: leaderelection.LeaderCallbacks{
			OnStartedLeading: func(lctx context.Context) {
				log.Info("leading", "lease", cfg.Namespace+"/"+le.Name, "identity", le.Identity)
				served <- serve(lctx)
				stopElection()
			},
			OnStoppedLeading: func() {},
			OnNewLeader: func(id string) {
				if id != le.Identity {
					log.Info("standing by", "leader", id, "lease", cfg.Namespace+"/"+le.Name)
				}
			},
		},
	})
	if err != nil {
		return fmt.Errorf("leader election: %w", err)
	}
	log.Info("campaigning for leadership", "lease", cfg.Namespace+"/"+le.Name, "identity", le.Identity)
	elector.Run(ectx) // returns when ctx ends, leadership is lost or serving failed
	// Run starts OnStartedLeading on a goroutine of its own, once it has
	// written the Lease as its holder; it may not have run yet.
	if !wrote.acquired.Load() {
		return nil
	}
	err = <-served
	switch {
	case ctx.Err() != nil && (err == nil || errors.Is(err, context.Canceled)):
		return nil
	case err != nil:
		return fmt.Errorf("serving as the leader: %w", err)
	}
	return errLostLeadership
}

// writtenLock remembers whether this replica ever wrote the Lease, which it
// does first when it acquires it.
type writtenLock struct {
	resourcelock.Interface
	acquired atomic.Bool
}

func (l *writtenLock) Create(ctx context.Context, r resourcelock.LeaderElectionRecord) error {
	err := l.Interface.Create(ctx, r)
	if err == nil && r.HolderIdentity == l.Identity() {
		l.acquired.Store(true)
	}
	return err
}

func (l *writtenLock) Update(ctx context.Context, r resourcelock.LeaderElectionRecord) error {
	err := l.Interface.Update(ctx, r)
	if err == nil && r.HolderIdentity == l.Identity() {
		l.acquired.Store(true)
	}
	return err
}
