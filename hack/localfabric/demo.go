package main

import (
	"bytes"
	"context"
	_ "embed"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"text/template"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

//go:embed hello-pod.yaml.tmpl
var helloPodTemplate string

//go:embed web-pod.yaml.tmpl
var webPodTemplate string

// webPort is the port the demo's web pod serves on, on its device.
const webPort = 8080

// demo runs the fabric in this process, deploys examples/hello and the
// examples/httpserver service on it, shows them running and serving, and keeps
// everything running until ctx ends (Ctrl-C).
func demo(ctx context.Context, cfg Config, logger *slog.Logger) error {
	if err := preflight(ctx, &cfg); err != nil {
		return err
	}
	if err := os.WriteFile(pidFile(cfg), fmt.Appendf(nil, "%d %s\n", os.Getpid(), os.Args[0]), 0o644); err != nil {
		return err
	}
	defer func() { _ = os.Remove(pidFile(cfg)) }()

	fabricCtx, stopFabric := context.WithCancel(ctx)
	defer stopFabric()
	ready := make(chan Info, 1)
	done := make(chan error, 1)
	go func() { done <- newFabric(cfg, logger).run(fabricCtx, func(info Info) { ready <- info }) }()

	var info Info
	select {
	case info = <-ready:
	case err := <-done:
		if err == nil {
			return nil // interrupted while starting
		}
		return fmt.Errorf("start the local fabric: %w", err)
	}

	if err := runHello(ctx, cfg, info); err != nil {
		if ctx.Err() == nil {
			fmt.Fprintf(os.Stderr, "\ndemo failed: %v\n", err)
			showDiagnostics(cfg, info)
			stopFabric()
			if stopErr := <-done; stopErr != nil {
				fmt.Fprintf(os.Stderr, "stop the local fabric: %v\n", stopErr)
			}
			return fmt.Errorf("demo failed; logs are in %s", dirsOf(cfg.Dir).logs)
		}
	}
	if ctx.Err() == nil {
		fmt.Printf(`
To use this fabric from another shell while the demo runs:

  . %s
  kubectl get nodes,pods -o wide
  kubectl logs -f hello
  kubectl port-forward pod/web 18080:%d   # then: curl localhost:18080/
  kubectl exec web -- module.wasm echo hi

Press Ctrl-C to stop the demo and tear the fabric down.
`, info.EnvFile, webPort)
	}
	<-ctx.Done()
	fmt.Println("\nstopping the local fabric...")
	stopFabric()
	return <-done
}

// runHello deploys examples/hello and the web service (runWeb), then shows
// nodes, pods and hello's logs.
func runHello(ctx context.Context, cfg Config, info Info) error {
	if _, err := deploy(ctx, cfg, info, "hello", "hello", helloPodTemplate); err != nil {
		return err
	}
	if err := runWeb(ctx, cfg, info); err != nil {
		return err
	}

	fmt.Println("\n==> kubectl get nodes,pods -o wide")
	if err := kubectl(ctx, info, "get", "nodes,pods", "-o", "wide"); err != nil {
		return err
	}
	fmt.Println("\n==> kubectl logs hello")
	if err := kubectl(ctx, info, "logs", "hello", "--tail=20"); err != nil {
		// The pod runs; say so, but the logs path is worth a look.
		fmt.Fprintf(os.Stderr, "warning: %v\n", err)
	}
	return nil
}

// runWeb deploys examples/httpserver as the pod web and shows it serving: an
// HTTP GET to the pod's IP (its device's address) and port.
func runWeb(ctx context.Context, cfg Config, info Info) error {
	pod, err := deploy(ctx, cfg, info, "httpserver", "web", webPodTemplate)
	if err != nil {
		return err
	}
	url := fmt.Sprintf("http://%s/", net.JoinHostPort(pod.Status.PodIP, fmt.Sprint(webPort)))
	fmt.Printf("\n==> curl %s   (the pod serves on its device)\n", url)
	client := &http.Client{Timeout: 5 * time.Second}
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := client.Get(url)
		if err == nil {
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
			resp.Body.Close()
			fmt.Printf("%s %s", resp.Status, body)
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("GET %s: %w", url, err)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// deploy builds examples/<example> for wasip1, pushes it to the fabric's
// registry as <example>:v1, applies the pod template (filled with info and
// the web port) and waits until the pod, named pod, runs.
func deploy(ctx context.Context, cfg Config, info Info, example, pod, podTemplate string) (*corev1.Pod, error) {
	d := dirsOf(cfg.Dir)
	fmt.Printf("\n==> building examples/%s for GOOS=wasip1 GOARCH=wasm\n", example)
	wasmPath := filepath.Join(d.root, example+".wasm")
	build := exec.CommandContext(ctx, "go", "build", "-o", wasmPath, "./examples/"+example)
	build.Dir = cfg.Root
	build.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm", "CGO_ENABLED=0")
	build.Stdout, build.Stderr = os.Stdout, os.Stderr
	if err := build.Run(); err != nil {
		return nil, fmt.Errorf("build examples/%s: %w", example, err)
	}
	module, err := os.ReadFile(wasmPath)
	if err != nil {
		return nil, err
	}

	ref := info.Registry + "/" + example + ":v1"
	fmt.Printf("\n==> pushing %s (%d KiB module)\n", ref, len(module)/1024)
	digest, err := pushModule(ctx, ref, module)
	if err != nil {
		return nil, fmt.Errorf("push %s: %w", ref, err)
	}
	fmt.Println(ref + "@" + digest)

	var manifest bytes.Buffer
	data := struct {
		Info
		WebPort int
	}{info, webPort}
	if err := template.Must(template.New("pod").Parse(podTemplate)).Execute(&manifest, data); err != nil {
		return nil, err
	}
	manifestPath := filepath.Join(d.root, pod+"-pod.yaml")
	if err := os.WriteFile(manifestPath, manifest.Bytes(), 0o644); err != nil {
		return nil, err
	}
	fmt.Printf("\n==> kubectl apply -f %s\n", manifestPath)
	if err := kubectl(ctx, info, "apply", "-f", manifestPath); err != nil {
		return nil, err
	}

	fmt.Printf("\n==> waiting for pod %s to be Running\n", pod)
	restCfg, err := clientcmd.BuildConfigFromFlags("", info.Kubeconfig)
	if err != nil {
		return nil, err
	}
	client, err := kubernetes.NewForConfig(restCfg)
	if err != nil {
		return nil, err
	}
	waitCtx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	if err := waitPodRunning(waitCtx, client, "default", pod); err != nil {
		return nil, err
	}
	return client.CoreV1().Pods("default").Get(ctx, pod, metav1.GetOptions{})
}

// waitPodRunning returns once the pod's phase is Running, and fails if it ends or
// ctx does first.
func waitPodRunning(ctx context.Context, client kubernetes.Interface, namespace, name string) error {
	pods := client.CoreV1().Pods(namespace)
	selector := fields.OneTermEqualSelector("metadata.name", name).String()
	for {
		w, err := pods.Watch(ctx, metav1.ListOptions{FieldSelector: selector})
		if err != nil {
			return fmt.Errorf("watch pod %s/%s: %w", namespace, name, err)
		}
		pod, err := pods.Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			w.Stop()
			return fmt.Errorf("get pod %s/%s: %w", namespace, name, err)
		}
		switch pod.Status.Phase {
		case corev1.PodRunning:
			w.Stop()
			return nil
		case corev1.PodSucceeded, corev1.PodFailed:
			w.Stop()
			return fmt.Errorf("pod %s/%s ended in phase %s: %s", namespace, name, pod.Status.Phase, pod.Status.Message)
		}
		select {
		case <-ctx.Done():
			w.Stop()
			return fmt.Errorf("pod %s/%s not Running (phase %s): %w", namespace, name, pod.Status.Phase, ctx.Err())
		case <-w.ResultChan():
		}
		w.Stop()
	}
}

// kubectl runs the fabric's kubectl with its kubeconfig, output to the terminal.
func kubectl(ctx context.Context, info Info, args ...string) error {
	cmd := exec.CommandContext(ctx, info.Kubectl, append([]string{"--kubeconfig", info.Kubeconfig}, args...)...)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("kubectl %s: %w", strings.Join(args, " "), err)
	}
	return nil
}

// showDiagnostics prints what helps when the demo pod does not run.
func showDiagnostics(cfg Config, info Info) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	fmt.Fprintln(os.Stderr, "\n==> kubectl describe pod hello")
	_ = kubectl(ctx, info, "describe", "pod", "hello")
	fmt.Fprintln(os.Stderr, "\n==> kubectl get nodes,pods -o wide")
	_ = kubectl(ctx, info, "get", "nodes,pods", "-o", "wide")
	logs := dirsOf(cfg.Dir).logs
	for _, name := range []string{"provider", "agent-1"} {
		path := filepath.Join(logs, name+".log")
		if tail := logTail(path, 20); tail != "" {
			fmt.Fprintf(os.Stderr, "\n==> last lines of %s\n%s\n", path, tail)
		}
	}
}
