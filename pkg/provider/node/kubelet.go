package node

import (
	"context"
	"io"
	"net"
	"strconv"

	dto "github.com/prometheus/client_model/go"
	"github.com/virtual-kubelet/virtual-kubelet/node/api"
	corev1 "k8s.io/api/core/v1"
	statsv1alpha1 "k8s.io/kubelet/pkg/apis/stats/v1alpha1"

	"github.com/edgefabric/edgefabric/pkg/provider/kubeletapi"
)

// nodeKubelet is the kubelet API of one node: the manager's, answering only
// for the pods of that node. The API server's node proxy reaches a node at
// its InternalIP and kubelet port with a path that does not name the node
// (/stats/summary, /metrics/resource): the nodes of one provider share an
// address, so each needs a port of its own for metrics-server and kubectl
// top to see that node's pods and usage.
type nodeKubelet struct{ n *clusterNode }

var _ kubeletapi.Backend = nodeKubelet{}

// listenKubelet opens the node's own kubelet API port, if the manager is
// configured for them (Config.KubeletTLS).
func (n *clusterNode) listenKubelet() error {
	cfg := n.m.cfg
	if cfg.KubeletTLS == nil {
		return nil
	}
	lis, err := net.Listen("tcp", net.JoinHostPort(cfg.KubeletHost, "0"))
	if err != nil {
		return err
	}
	_, port, _ := net.SplitHostPort(lis.Addr().String())
	p, _ := strconv.Atoi(port)
	n.kubeletLis, n.kubeletPort = lis, int32(p)
	return nil
}

// closeKubelet closes the node's own kubelet API port of a node that will
// not run.
func (n *clusterNode) closeKubelet() {
	if n.kubeletLis != nil {
		_ = n.kubeletLis.Close()
	}
}

// serveKubelet serves the node's own kubelet API until ctx ends.
func (n *clusterNode) serveKubelet(ctx context.Context) error {
	if n.kubeletLis == nil {
		return nil
	}
	h := n.m.cfg.KubeletGuard.Wrap(n.name, kubeletapi.Handler(nodeKubelet{n}))
	return kubeletapi.Serve(ctx, n.kubeletLis, n.m.cfg.KubeletTLS, h,
		n.m.log.With("component", "kubelet-api", "node", n.name))
}

// publishedKubeletPort is the port the node publishes: its own, or the
// provider's shared one.
func (n *clusterNode) publishedKubeletPort() int32 {
	if n.kubeletPort != 0 {
		return n.kubeletPort
	}
	return n.m.cfg.KubeletPort
}

func (k nodeKubelet) has(namespace, name string) bool {
	k.n.mu.Lock()
	defer k.n.mu.Unlock()
	_, ok := k.n.byKey[namespace+"/"+name]
	return ok
}

func (k nodeKubelet) notHere(namespace, name string) error {
	return notFound("pod %s/%s is not on node %s", namespace, name, k.n.name)
}

func (k nodeKubelet) Logs(ctx context.Context, namespace, pod, container string, opts api.ContainerLogOpts) (io.ReadCloser, error) {
	if !k.has(namespace, pod) {
		return nil, k.notHere(namespace, pod)
	}
	return k.n.m.Logs(ctx, namespace, pod, container, opts)
}

func (k nodeKubelet) Pods(ctx context.Context) ([]*corev1.Pod, error) { return k.n.GetPods(ctx) }

func (k nodeKubelet) Exec(ctx context.Context, namespace, pod, container string, cmd []string, attach api.AttachIO) error {
	if !k.has(namespace, pod) {
		return k.notHere(namespace, pod)
	}
	return k.n.m.Exec(ctx, namespace, pod, container, cmd, attach)
}

func (k nodeKubelet) Attach(ctx context.Context, namespace, pod, container string, attach api.AttachIO) error {
	if !k.has(namespace, pod) {
		return k.notHere(namespace, pod)
	}
	return k.n.m.Attach(ctx, namespace, pod, container, attach)
}

func (k nodeKubelet) PortForward(ctx context.Context, namespace, pod string, port int32, conn io.ReadWriteCloser) error {
	if !k.has(namespace, pod) {
		return k.notHere(namespace, pod)
	}
	return k.n.m.PortForward(ctx, namespace, pod, port, conn)
}

func (k nodeKubelet) StatsSummary(context.Context) (*statsv1alpha1.Summary, error) {
	return statsSummary(k.n.m, []*clusterNode{k.n}), nil
}

func (k nodeKubelet) MetricsResource(context.Context) ([]*dto.MetricFamily, error) {
	return metricsResource(k.n.m, []*clusterNode{k.n}), nil
}
