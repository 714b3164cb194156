// Package kubeletapi serves the kubelet HTTP API (logs, exec, attach,
// port-forward and stats) for every virtual node of the provider. The API
// server reaches it at the nodes' InternalIP and kubelet port; requests name
// the pod, so one server answers for all nodes. A Guard (auth.go) puts
// authentication and authorization in front of it, as a kubelet in webhook
// mode does.
package kubeletapi

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/virtual-kubelet/virtual-kubelet/node/api"
	corev1 "k8s.io/api/core/v1"
	statsv1alpha1 "k8s.io/kubelet/pkg/apis/stats/v1alpha1"
)

// Backend answers the requests. Its methods may block on the device and must
// be safe for concurrent use.
type Backend interface {
	Logs(ctx context.Context, namespace, pod, container string, opts api.ContainerLogOpts) (io.ReadCloser, error)
	Pods(ctx context.Context) ([]*corev1.Pod, error)
	// Exec runs cmd in a container; a non-zero exit is a utilexec.ExitError.
	Exec(ctx context.Context, namespace, pod, container string, cmd []string, attach api.AttachIO) error
	// Attach attaches to a running container until it ends or ctx ends.
	Attach(ctx context.Context, namespace, pod, container string, attach api.AttachIO) error
	// PortForward pipes one connection to a TCP port of the pod.
	PortForward(ctx context.Context, namespace, pod string, port int32, conn io.ReadWriteCloser) error
	// StatsSummary is /stats/summary; MetricsResource is /metrics/resource.
	StatsSummary(ctx context.Context) (*statsv1alpha1.Summary, error)
	MetricsResource(ctx context.Context) ([]*dto.MetricFamily, error)
}

// Handler returns the kubelet API's HTTP handler over b.
func Handler(b Backend) http.Handler {
	return api.PodHandler(api.PodHandlerConfig{
		GetContainerLogs:      b.Logs,
		GetPods:               b.Pods,
		GetPodsFromKubernetes: b.Pods,
		RunInContainer:        b.Exec,
		AttachToContainer:     b.Attach,
		PortForward:           b.PortForward,
		GetStatsSummary:       b.StatsSummary,
		GetMetricsResource:    b.MetricsResource,
		StreamIdleTimeout:     30 * time.Minute,
		StreamCreationTimeout: 30 * time.Second,
	}, false)
}

// Serve serves h on lis with tc until ctx ends.
func Serve(ctx context.Context, lis net.Listener, tc *tls.Config, h http.Handler, log *slog.Logger) error {
	srv := &http.Server{
		Handler:           h,
		TLSConfig:         tc,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.ServeTLS(lis, "", "") }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		srv.Close()
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
