package node

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/virtual-kubelet/virtual-kubelet/errdefs"
	"github.com/virtual-kubelet/virtual-kubelet/node/api"
	"google.golang.org/protobuf/types/known/timestamppb"
	corev1 "k8s.io/api/core/v1"

	hubv1 "github.com/edgefabric/edgefabric/pkg/apis/hub/v1"
	"github.com/edgefabric/edgefabric/pkg/provider/fabric"
)

// logs streams a container's logs if the pod is this node's.
func (n *clusterNode) logs(ctx context.Context, namespace, name, container string, opts api.ContainerLogOpts) (io.ReadCloser, bool, error) {
	n.mu.Lock()
	uid, ok := n.byKey[namespace+"/"+name]
	var pod *corev1.Pod
	if ok {
		pod = n.byUID[uid].Pod.DeepCopy()
	}
	n.mu.Unlock()
	if !ok {
		return nil, false, nil
	}
	container, err := containerName(pod, container)
	if err != nil {
		return nil, true, err
	}
	req := &hubv1.StreamRequest{Container: container, Kind: &hubv1.StreamRequest_Logs{Logs: &hubv1.LogOptions{
		Follow:       opts.Follow,
		TailLines:    tail(opts.Tail),
		SinceSeconds: int64(opts.SinceSeconds),
		Timestamps:   opts.Timestamps,
		Previous:     opts.Previous,
		LimitBytes:   int64(opts.LimitBytes),
	}}}
	if !opts.SinceTime.IsZero() {
		req.GetLogs().SinceTime = timestamppb.New(opts.SinceTime)
	}
	openCtx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	s, err := n.m.fab.OpenStream(openCtx, uid, req)
	if err != nil {
		return nil, true, errdefs.AsNotFound(fmt.Errorf("logs of %s/%s: %w", namespace, name, err))
	}
	return peek(s, firstFrameWait)
}

// firstFrameWait is how long a log request waits for the device's first
// answer before the response starts, so that a refusal (no previous
// container, say) can still become an error status instead of a broken body.
const firstFrameWait = 2 * time.Second

// peek waits up to firstFrameWait for the stream's first read. An error that
// comes first is returned as a bad request, as the kubelet answers; otherwise
// the stream is returned with what was read still to be read.
func peek(s *fabric.Stream, wait time.Duration) (io.ReadCloser, bool, error) {
	p := &peekedStream{s: s, first: make(chan firstRead, 1)}
	go func() {
		buf := make([]byte, 32<<10)
		n, err := s.Read(buf)
		p.first <- firstRead{data: buf[:n], err: err}
	}()
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case r := <-p.first:
		if len(r.data) == 0 && r.err != nil && !errors.Is(r.err, io.EOF) {
			s.Close()
			return nil, true, errdefs.InvalidInput(r.err.Error())
		}
		p.got, p.pending, p.err = true, r.data, r.err
	case <-t.C:
		// A follow of a quiet container: answer now, data comes later.
	}
	return p, true, nil
}

type firstRead struct {
	data []byte
	err  error
}

// peekedStream yields the first read, then the rest of the stream.
type peekedStream struct {
	s       *fabric.Stream
	first   chan firstRead
	got     bool
	pending []byte
	err     error
}

func (p *peekedStream) Read(b []byte) (int, error) {
	if !p.got {
		r := <-p.first
		p.got, p.pending, p.err = true, r.data, r.err
	}
	if len(p.pending) > 0 {
		n := copy(b, p.pending)
		p.pending = p.pending[n:]
		return n, nil
	}
	if p.err != nil {
		return 0, p.err
	}
	return p.s.Read(b)
}

func (p *peekedStream) Close() error { return p.s.Close() }

// tail maps virtual-kubelet's tail (0 = unset) to the wire's (-1 = all).
func tail(t int) int64 {
	if t <= 0 {
		return -1
	}
	return int64(t)
}

func notFound(format string, args ...any) error {
	return errdefs.NotFound(fmt.Sprintf(format, args...))
}
