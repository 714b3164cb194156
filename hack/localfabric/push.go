package main

import (
	"context"

	"github.com/edgefabric/edgefabric/test/ocitest"
)

// pushModule pushes a WASM module as an ordinary OCI image with a wasip1/wasm
// platform, the packaging most registries and tools understand.
func pushModule(ctx context.Context, ref string, module []byte) (digest string, err error) {
	return ocitest.PushModule(ctx, ref, module, ocitest.Image)
}
