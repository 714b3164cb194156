package e2e

import (
	"strconv"
	"testing"

	"github.com/edgefabric/edgefabric/test/fabrictest"

	"github.com/edgefabric/edgefabric/test/ocitest"
)

// TestWorkloads runs pods on one fabric of three devices, most of them at the
// same time: placement, translation, status, events, logs, deletion, pods
// edgefabric cannot run, and the image packagings the agent understands.
func TestWorkloads(t *testing.T) {
	// Small log files, so that rotation happens within a test.
	f := startFabric(t, 3, fabrictest.WithAgentFlags("--log-max-bytes", strconv.Itoa(logMaxBytes), "--log-max-files", "2"))
	ref, imageID := f.PushExample("hello", "v1", ocitest.Image)
	img := image{ref: ref, id: imageID}
	t.Run("pods", func(t *testing.T) {
		for name, test := range map[string]func(*fabrictest.Fabric, image){
			"placement":      testPlacement,
			"env":            testEnv,
			"config error":   testConfigError,
			"restart policy": testRestartPolicy,
			"memory limit":   testMemoryLimit,
			"delete":         testDelete,
			"unsupported":    testUnsupported,
			"running status": testRunningStatus,
			"crash loop":     testCrashLoop,
			"image pull":     testImagePull,
			"start error":    testStartError,
			"logs follow":    testLogsFollow,
			"logs exited":    testLogsExited,
			"logs since":     testLogsSince,
			"logs previous":  testLogsPrevious,
			"logs rotation":  testLogsRotation,
			"packagings":     testPackagings,
			"wasi clock":     testClock,
		} {
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				test(f.For(t), img)
			})
		}
	})
	f.CheckAlive()
}

// logMaxBytes is the size at which the agents of TestWorkloads rotate a
// container's log file.
const logMaxBytes = 64 << 10

// image is an image pushed to the fabric's registry.
type image struct {
	ref string // registry/repo:tag
	id  string // the imageID pods report
}
