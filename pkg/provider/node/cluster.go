package node

import (
	"context"
	"fmt"
	"net"
	"slices"
	"sync"
	"time"

	vknode "github.com/virtual-kubelet/virtual-kubelet/node"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/tools/record"

	"github.com/edgefabric/edgefabric/pkg/provider/fabric"
	"github.com/edgefabric/edgefabric/pkg/provider/node/lifecycle"
	"github.com/edgefabric/edgefabric/pkg/scopes"
)

// clusterNode is the virtual node of one cluster of an account's devices:
// the account cluster (every device, node edge-<account>), or a network or
// proximity cluster whose members the manager sets as clusters form.
//
// It is the shell around package lifecycle: it holds each pod's lifecycle
// state, steps it under mu with the events virtual-kubelet, the fabric and
// its timers bring, and carries out the actions after mu is released
// (pods.go). Node status is in nodestatus.go, device loss in deviceloss.go,
// logs in logs.go.
type clusterNode struct {
	m        *Manager
	account  string
	key      fabric.ClusterKey
	name     string
	recorder record.EventRecorder
	pc       *vknode.PodController
	nc       *vknode.NodeController
	pods     informersFactory

	// Signals to run's goroutines, coalesced (capacity 1): the node's status
	// may have changed; waiting pods may fit now; pod statuses are queued.
	nodeChanged chan struct{}
	retryNow    chan struct{}
	statusReady chan struct{}

	mu         sync.Mutex
	byUID      map[string]lifecycle.Pod
	byKey      map[string]string // namespace/name → uid
	notifyPod  func(*corev1.Pod)
	statuses   []*corev1.Pod // queued for notifyPod, oldest first
	notifyNode func(*corev1.Node)
	lastNode   *corev1.Node // the status last given to notifyNode
	// members are the cluster's devices; nil means every device of the
	// account (the account scope).
	members []string
	// dissolved is when the cluster stopped being formed; zero while it is.
	dissolved time.Time
	// claim is what a network cluster's ID was chosen for (fabric.Cluster).
	claim string
	// left holds when each device that was a member stopped being one; a
	// pod on such a device is placed again after its device-loss grace, as
	// if the device were lost. A device that joins again is removed.
	left map[string]time.Time
	// stop ends run; set by the manager.
	stop context.CancelFunc
	// kubeletLis and kubeletPort are the node's own kubelet API, if it has
	// one (see Config.KubeletTLS).
	kubeletLis  net.Listener
	kubeletPort int32
}

type informersFactory interface {
	Start(stopCh <-chan struct{})
	Shutdown()
}

var (
	_ vknode.PodLifecycleHandler = (*clusterNode)(nil)
	_ vknode.PodNotifier         = (*clusterNode)(nil)
	_ vknode.NodeProvider        = (*clusterNode)(nil)
)

// newClusterNode returns the node of a cluster. A network or proximity
// cluster's node starts with the given members (none if nil) and claim,
// as the node controller registers it with them.
func newClusterNode(m *Manager, key fabric.ClusterKey, members []string, claim string) (*clusterNode, error) {
	name := NodeName(key.Account)
	if key.Scope != scopes.Account {
		name = key.NodeName()
	}
	n := &clusterNode{
		m:        m,
		account:  key.Account,
		key:      key,
		name:     name,
		recorder: m.recorderFor(name),
		byUID:    map[string]lifecycle.Pod{},
		byKey:    map[string]string{},

		nodeChanged: make(chan struct{}, 1),
		retryNow:    make(chan struct{}, 1),
		statusReady: make(chan struct{}, 1),
	}
	if key.Scope != scopes.Account {
		n.members, n.claim = append([]string{}, members...), claim
	}
	if err := n.listenKubelet(); err != nil {
		return nil, fmt.Errorf("kubelet API for %s: %w", n.name, err)
	}
	pods := m.podsInformer(n.name)
	pc, err := m.newPodController(n, pods)
	if err != nil {
		n.closeKubelet()
		return nil, fmt.Errorf("pod controller for %s: %w", n.name, err)
	}
	nc, err := m.newNodeController(n)
	if err != nil {
		n.closeKubelet()
		return nil, fmt.Errorf("node controller for %s: %w", n.name, err)
	}
	n.pc, n.nc, n.pods = pc, nc, pods
	return n, nil
}

// run runs the node's controllers, and the goroutines that send its node
// and pod statuses and place waiting pods again, until ctx ends or a
// controller fails.
func (n *clusterNode) run(ctx context.Context) error {
	// The node controller's status callback blocks while the controller is
	// not running its loop, so the controllers get a context of their own
	// that ends only once the status senders have stopped.
	vkCtx, stopVK := context.WithCancel(context.WithoutCancel(ctx))
	defer stopVK()
	n.pods.Start(vkCtx.Done())
	defer n.pods.Shutdown()
	errc := make(chan error, 2)
	go func() { errc <- n.nc.Run(vkCtx) }()
	go func() { errc <- n.pc.Run(vkCtx, n.m.cfg.Workers) }()

	loopCtx, stopLoops := context.WithCancel(ctx)
	var loops sync.WaitGroup
	loops.Go(func() { n.sendNodeStatus(loopCtx) })
	loops.Go(func() { n.sendPodStatuses(loopCtx) })
	loops.Go(func() { n.retryLoop(loopCtx) })
	loops.Go(func() {
		if err := n.serveKubelet(loopCtx); err != nil {
			n.m.log.Error("kubelet API stopped", "node", n.name, "err", err)
		}
	})

	var err error
	running := 2
	select {
	case <-ctx.Done():
	case err = <-errc:
		running--
	}
	stopLoops()
	loops.Wait()
	stopVK()
	for ; running > 0; running-- {
		// The first error ended run; if ctx did, what they stop with.
		if e := <-errc; err == nil {
			err = e
		}
	}
	return err
}

// retryLoop moves misplaced pods and places waiting pods again whenever
// devicesChanged (or a pod's lifecycle) asks, and every second moves the
// pods of devices lost longer than their grace, until ctx ends.
func (n *clusterNode) retryLoop(ctx context.Context) {
	t := n.m.clock.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-n.retryNow:
			n.stepAll(ctx, lifecycle.Retry{})
		case <-t.C():
			n.tick(ctx, "", "")
		}
	}
}

// devicesChanged tells run's goroutines that the node's status may have
// changed and waiting pods may fit now. It never blocks.
func (n *clusterNode) devicesChanged() {
	signal(n.nodeChanged)
	signal(n.retryNow)
}

// signal sends on a coalescing channel of capacity 1 without blocking.
func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// memberList returns the cluster's members, nil for every device of the account.
func (n *clusterNode) memberList() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.members == nil {
		return nil
	}
	return slices.Clone(n.members)
}

// setMembers records the cluster's members, what its ID was chosen for and
// whether it is formed, and reports whether anything changed. The members
// of a dissolved cluster stay as they were.
func (n *clusterNode) setMembers(members []string, claim string, dissolved bool, now time.Time) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	changed := false
	if !dissolved && (n.members == nil || !slices.Equal(n.members, members)) {
		for _, d := range n.members {
			if !slices.Contains(members, d) {
				if n.left == nil {
					n.left = map[string]time.Time{}
				}
				n.left[d] = now
			}
		}
		for _, d := range members {
			delete(n.left, d)
		}
		n.members, changed = slices.Clone(members), true
		if n.members == nil {
			n.members = []string{}
		}
	}
	if !dissolved && claim != "" {
		n.claim = claim
	}
	switch {
	case dissolved && n.dissolved.IsZero():
		n.dissolved, changed = now, true
	case !dissolved && !n.dissolved.IsZero():
		n.dissolved, changed = time.Time{}, true
	}
	return changed
}

// cluster returns the network or proximity cluster the node stands for, as
// it was last formed; false for the account's node and before it was.
func (n *clusterNode) cluster() (fabric.Cluster, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.key.Scope == scopes.Account || n.members == nil {
		return fabric.Cluster{}, false
	}
	return fabric.Cluster{ClusterKey: n.key, Members: slices.Clone(n.members), Claim: n.claim}, true
}

// devices returns the cluster's devices.
func (n *clusterNode) devices() []fabric.Device {
	devs := n.m.fab.Devices(n.account)
	members := n.memberList()
	if members == nil {
		return devs
	}
	return slices.DeleteFunc(devs, func(d fabric.Device) bool { return !slices.Contains(members, d.ID) })
}
