package agent

import (
	"context"
	"crypto/x509"
	"log/slog"
	"time"

	"github.com/edgefabric/edgefabric/pkg/agent/client"
	"github.com/edgefabric/edgefabric/pkg/agent/localapi"
	"github.com/edgefabric/edgefabric/pkg/agent/store"
	"github.com/edgefabric/edgefabric/pkg/agent/supervisor"
	hubv1 "github.com/edgefabric/edgefabric/pkg/apis/hub/v1"
	"github.com/edgefabric/edgefabric/pkg/version"
)

// serveLocalAPI serves the agent's status on the socket in its data directory
// until ctx ends (see package localapi). It only logs a failure: the device
// keeps running its workloads without it.
// clusters, if not nil, adds the clusters the device observes itself (its
// network cluster and LAN peers).
func serveLocalAPI(ctx context.Context, cfg Config, st *store.Store, cl *client.Client, sup *supervisor.Supervisor, clusters func() []string, log *slog.Logger) {
	started := time.Now()
	status := func() localapi.Status {
		s := localapi.Status{
			Version: version.Version, Started: started, DataDir: cfg.DataDir,
			Device: cfg.DeviceID, Hub: cfg.Hub, Connected: cl.Connected(), Decommissioned: cl.Decommissioned(),
			Clusters: []string{}, Workloads: []localapi.Workload{},
		}
		if id, err := st.Identity(); err == nil {
			s.Account = id.Account
			if c, err := x509.ParseCertificate(id.CertDER); err == nil {
				s.CertificateExpires = c.NotAfter
			}
		}
		if s.Account != "" {
			// The account's cluster is the one every device belongs to.
			s.Clusters = append(s.Clusters, "account "+s.Account)
		}
		if clusters != nil {
			s.Clusters = append(s.Clusters, clusters()...)
		}
		for _, ws := range sup.Statuses() {
			w := localapi.Workload{
				Namespace: ws.GetNamespace(), Name: ws.GetName(), UID: ws.GetUid(),
				Phase: ws.GetPhase(), Reason: ws.GetReason(), Containers: []localapi.Container{},
			}
			for _, c := range ws.GetContainers() {
				lc := localapi.Container{Name: c.GetName(), Restarts: c.GetRestartCount()}
				switch state := c.GetState(); {
				case state.GetRunning() != nil:
					lc.State = "Running"
				case state.GetTerminated() != nil:
					lc.State, lc.Reason = "Terminated", state.GetTerminated().GetReason()
				case state.GetWaiting() != nil:
					lc.State, lc.Reason = "Waiting", state.GetWaiting().GetReason()
				default:
					lc.State = "Unknown"
				}
				w.Containers = append(w.Containers, lc)
			}
			if w.Phase == "" {
				w.Phase = phase(w.Containers, ws.GetContainers())
			}
			s.Workloads = append(s.Workloads, w)
		}
		return s
	}
	if err := localapi.Serve(ctx, localapi.SocketPath(cfg.DataDir), status, log); err != nil {
		log.Warn("local API not served; edgeagent status will not reach this agent", "err", err)
	}
}

// phase sums up a workload's containers as a pod phase, for a device whose
// supervisor leaves that to the provider.
func phase(cs []localapi.Container, st []*hubv1.ContainerStatus) string {
	if len(cs) == 0 {
		return "Pending"
	}
	running, failed, done := 0, 0, 0
	for i, c := range cs {
		switch c.State {
		case "Running":
			running++
		case "Terminated":
			done++
			if st[i].GetState().GetTerminated().GetExitCode() != 0 {
				failed++
			}
		}
	}
	switch {
	case done == len(cs) && failed > 0:
		return "Failed"
	case done == len(cs):
		return "Succeeded"
	case running > 0:
		return "Running"
	}
	return "Pending"
}
