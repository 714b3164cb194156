package kubetest

import (
	"context"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/tools/cache"
	watchtools "k8s.io/client-go/tools/watch"
)

// Until lists and watches objects through lw until one of type T satisfies
// cond, and returns it; it fails the test with the last object seen if none
// does within timeout. Deleted objects never satisfy it.
func Until[T runtime.Object](t testing.TB, timeout time.Duration, lw cache.ListerWatcher, obj T, cond func(T) bool) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var last T
	_, err := watchtools.UntilWithSync(ctx, lw, obj, nil, func(ev watch.Event) (bool, error) {
		o, ok := ev.Object.(T)
		if !ok {
			return false, nil
		}
		last = o
		return ev.Type != watch.Deleted && cond(o), nil
	})
	if err != nil {
		t.Fatalf("waiting for %T: %v; last seen: %+v", obj, err, last)
	}
	return last
}
