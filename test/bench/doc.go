// Package bench holds edgefabric's end-to-end benchmarks: pod start latency
// through a real kube-apiserver against a minimal virtual-kubelet baseline on
// the same API server, the agent's binary size, the agent's resident
// memory with idle workloads, and the agent's CPU time with an idle WASM
// service (BenchmarkWASMIdle). Every benchmark starts what it measures as real
// processes (test/kubetest, test/ocitest, the provider and edgeagent binaries
// built from this tree as `make build` builds them), measures once per
// iteration, and prints its figures (testing.B.ReportMetric, and details on
// standard output); none of them asserts a target. docs/benchmarks.md
// records the figures and the machine they came from.
//
// Run them as `make bench` does:
//
//	KUBEBUILDER_ASSETS=$(bash hack/build-controlplane.sh) \
//	  go test ./test/bench/ -run '^$' -bench . -benchtime 1x -count=1 -timeout 30m
//
// Two variables help find where time or memory goes:
//
//	EDGEFABRIC_BENCH_PROFILE=dir  BenchmarkPodStart starts the provider and the
//	                              first agent with --debug-listen and saves CPU
//	                              profiles and goroutine dumps of the first
//	                              burst in dir
//	EDGEFABRIC_BENCH_LOGS=dir     every benchmark copies its processes' logs
//	                              into dir/<benchmark>
package bench
