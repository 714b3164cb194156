package node

import (
	"sync"
	"time"

	"k8s.io/client-go/util/workqueue"
)

// PodQueueRateLimiter is the rate limiter of virtual-kubelet's three pod
// queues in the provider: an item's first try goes through at once, and its
// retries back off exponentially from 1 ms to 30 s until it is forgotten
// (after a try that succeeded).
//
// virtual-kubelet's queues ask the limiter for every item they enqueue, first
// tries included. Its defaults (5 ms, then a 10 per second bucket) cap a node
// at 10 pods a second (docs/benchmarks.md); an item-exponential limiter from
// 1 ms still held every pod 1 ms in each of the two queues a pod start goes
// through, a fifth of a single pod's start on an idle fabric.
func PodQueueRateLimiter() workqueue.TypedRateLimiter[any] {
	return &firstTryNow{base: time.Millisecond, max: 30 * time.Second, tries: map[any]int{}}
}

// firstTryNow is an item-exponential rate limiter whose first try waits for
// nothing.
type firstTryNow struct {
	base, max time.Duration

	mu    sync.Mutex
	tries map[any]int
}

func (l *firstTryNow) When(item any) time.Duration {
	l.mu.Lock()
	n := l.tries[item]
	l.tries[item] = n + 1
	l.mu.Unlock()
	if n == 0 {
		return 0
	}
	d := l.base
	for i := 1; i < n && d < l.max; i++ {
		d *= 2
	}
	return min(d, l.max)
}

func (l *firstTryNow) Forget(item any) {
	l.mu.Lock()
	delete(l.tries, item)
	l.mu.Unlock()
}

func (l *firstTryNow) NumRequeues(item any) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return max(l.tries[item]-1, 0)
}
