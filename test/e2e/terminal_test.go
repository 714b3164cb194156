package e2e

import (
	"runtime"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/edgefabric/edgefabric/pkg/agent/pty"
	"github.com/edgefabric/edgefabric/test/fabrictest"
	"github.com/edgefabric/edgefabric/test/ocitest"
)

// TestTerminal drives kubectl exec -it as a user does, with the real
// kubectl on a terminal the test holds, into examples/tinysh: natively (a
// real pseudo-terminal on the device) and as a WASM module (the agent's line
// discipline).
func TestTerminal(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("native images are built for Linux")
	}
	f := startFabric(t, 1)
	wasmRef, _ := f.PushExample("tinysh", "v1", ocitest.Image)
	nativeRef := f.Registry + "/tinysh-native:v1"
	ocitest.PushNative(t, nativeRef, ocitest.BuildGoNative(t, "examples/tinysh"))
	sleep := func(p *corev1.Pod) { p.Spec.Containers[0].Args = []string{"sleep"} }
	// The shell as the main process, on a terminal, for attach -it.
	interactive := func(p *corev1.Pod) {
		c := &p.Spec.Containers[0]
		c.Stdin, c.TTY = true, true
		p.Spec.RestartPolicy = corev1.RestartPolicyNever
	}
	f.Create(f.Pod("tsh-native", nativeRef, sleep))
	f.Create(f.Pod("tsh-wasm", wasmRef, sleep))
	f.Create(f.Pod("tsh-native-tty", nativeRef, interactive))
	f.Create(f.Pod("tsh-wasm-tty", wasmRef, interactive))
	for _, name := range []string{"tsh-native", "tsh-wasm", "tsh-native-tty", "tsh-wasm-tty"} {
		f.WaitPod(name, 90*time.Second, running)
	}

	size := pty.Size{Width: 91, Height: 27}
	const wait = 60 * time.Second
	// shell is kubectl exec -it into the pod's shell, once it prompted.
	shell := func(f *fabrictest.Fabric, pod string, command ...string) (*fabrictest.Terminal, int) {
		term := f.KubectlTerminal(size, append([]string{"exec", "-it", pod, "--"}, command...)...)
		return term, term.WaitFor(0, "$ ", wait)
	}
	for _, rt := range []struct {
		name, pod string
		command   []string
		native    bool
	}{
		{name: "process", pod: "tsh-native", command: []string{"app"}, native: true},
		{name: "wasm", pod: "tsh-wasm", command: []string{"module.wasm"}},
	} {
		t.Run(rt.name, func(t *testing.T) {
			t.Run("lines", func(t *testing.T) {
				term, mark := shell(f.For(t), rt.pod, rt.command...)
				// The input is echoed (with CR as CRNL) and the output's NL
				// comes back as CRNL.
				term.Type("echo hi\r")
				mark = term.WaitFor(mark, "echo hi\r\nhi\r\n$ ", wait)
				// Erase and kill line.
				term.Type("echo ab\x7fc\r")
				mark = term.WaitFor(mark, "echo ab\b \bc\r\nac\r\n$ ", wait)
				term.Type("junk\x15echo x\r")
				mark = term.WaitFor(mark, "\r\nx\r\n$ ", wait)
				// A terminal: a pseudo-terminal (process), a character
				// device (WASM); natively of the size of the user's.
				term.Type("tty\r")
				mark = term.WaitFor(mark, "stdin is a terminal\r\n", wait)
				if rt.native {
					term.Type("size\r")
					term.WaitFor(mark, "91x27\r\n", wait)
				}
				term.Type("exit 3\r")
				if code := term.Wait(wait); code != 3 {
					t.Errorf("kubectl exit code: got %d, want 3; terminal %q", code, term.Output())
				}
			})
			t.Run("^D", func(t *testing.T) {
				term, _ := shell(f.For(t), rt.pod, rt.command...)
				term.Type("\x04")
				if code := term.Wait(wait); code != 0 {
					t.Errorf("kubectl exit code: got %d, want 0; terminal %q", code, term.Output())
				}
			})
			t.Run("^C", func(t *testing.T) {
				term, _ := shell(f.For(t), rt.pod, rt.command...)
				term.Type("echo never\x03")
				if code := term.Wait(wait); code != 130 {
					t.Errorf("kubectl exit code: got %d, want 130 (SIGINT); terminal %q", code, term.Output())
				}
			})
			t.Run("attach", func(t *testing.T) {
				f := f.For(t)
				pod := rt.pod + "-tty"
				term := f.KubectlTerminal(size, "attach", "-it", pod)
				// The prompt was written before the attach: a line typed
				// once kubectl is attached is answered.
				mark := term.WaitFor(0, "If you don't see a command prompt", wait)
				term.Type("echo attached\r")
				mark = term.WaitFor(mark, "echo attached\r\nattached\r\n$ ", wait)
				term.Type("tty\r")
				mark = term.WaitFor(mark, "stdin is a terminal\r\n", wait)
				if rt.native {
					term.Type("size\r")
					term.WaitFor(mark, "91x27\r\n", wait)
				}
				term.Type("exit 5\r")
				term.Wait(wait)
				p := f.WaitPod(pod, wait, func(p *corev1.Pod) bool { return app(p).State.Terminated != nil })
				if code := app(p).State.Terminated.ExitCode; code != 5 {
					t.Errorf("container exit code: got %d, want 5", code)
				}
				// The terminal's output is the container's log, as on a kubelet.
				if out, err := f.Kubectl("logs", pod); err != nil || !strings.Contains(out, "attached\r\n") {
					t.Errorf("logs: got %q, %v; want the terminal's output", out, err)
				}
			})
		})
	}
	f.CheckAlive()
}
