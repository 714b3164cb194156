# edgefabric. `make help` lists the targets; the two to start with are
# `make demo` and `make test`.

SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help
MAKEFLAGS += --no-print-directory

MODULE    := github.com/edgefabric/edgefabric
VERSION   ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -X $(MODULE)/pkg/version.Version=$(VERSION)
OUT       := _output
BIN       := $(OUT)/bin
CACHE     ?= $(or $(EDGEFABRIC_CACHE),$(HOME)/.cache/edgefabric)
export EDGEFABRIC_CACHE := $(CACHE)
# Every build and test runs on this Go, which the go command fetches once from the
# Go module proxy (about 76 MB): go1.26.8's standard library has vulnerabilities
# the provider and the agent reach (docs/security.md#dependencies).
# GO_TOOLCHAIN=local uses the Go on the PATH instead.
GO_TOOLCHAIN ?= go1.27.3
export GOTOOLCHAIN := $(GO_TOOLCHAIN)

# make test: packages built and tested at once (2 cores: more only thrashes).
TEST_P       ?= 2
TEST_TIMEOUT ?= 40m
TEST_FLAGS   ?=
PKGS         ?= ./...
# make fuzz: how long each fuzz target runs.
FUZZTIME     ?= 30s
# make bench
BENCH        ?= .
BENCHTIME    ?= 1s
# make vulncheck: extra govulncheck flags (e.g. -show verbose).
VULNCHECK_FLAGS ?=
# make up / make demo
AGENTS ?= 3
LANS   ?= 1
FABRIC_FLAGS ?=

# The control plane's binaries (etcd, kube-apiserver, kube-scheduler,
# kube-controller-manager, kubectl); built once into $(CACHE) by the script.
CONTROLPLANE = $(shell bash hack/build-controlplane.sh)
# The helm CLI, built once into $(CACHE) from the pin in hack/tools/helm; the chart
# tests find it through EDGEFABRIC_HELM.
HELM = $(shell bash hack/build-helm.sh)

LINT_KEY      := $(shell cat hack/tools/lint/go.mod hack/tools/lint/go.sum | sha256sum | cut -c1-12)
GOLANGCI_LINT := $(CACHE)/tools/golangci-lint-$(LINT_KEY)

# os/arch[/arm version] of every `make cross` agent binary.
CROSS_TARGETS := linux/amd64 linux/arm64 linux/arm/7 linux/arm/6 linux/riscv64 \
                 windows/amd64 darwin/arm64 darwin/amd64 android/arm64

##@ Start here

.PHONY: demo
demo: build localfabric ## Local control plane, registry, provider and AGENTS agents running examples/hello; Ctrl-C stops it
	$(BIN)/localfabric demo -agents=$(AGENTS) -lans=$(LANS) $(FABRIC_FLAGS)

.PHONY: test
test: controlplane helm examples ## Run every test against the real control plane (go test ./... -count=1)
	EDGEFABRIC_HELM="$(HELM)" KUBEBUILDER_ASSETS="$(CONTROLPLANE)" go test $(PKGS) -count=1 -timeout $(TEST_TIMEOUT) -p $(TEST_P) $(TEST_FLAGS)

##@ Local fabric

.PHONY: up
up: build localfabric ## Start the local fabric in the background (AGENTS=n LANS=n); then `. _output/local/env`
	$(BIN)/localfabric up -agents=$(AGENTS) -lans=$(LANS) $(FABRIC_FLAGS)

.PHONY: down
down: localfabric ## Stop everything `make up` or `make demo` started
	$(BIN)/localfabric down

.PHONY: status
status: localfabric ## Say whether the local fabric runs, and print its env file
	$(BIN)/localfabric status

.PHONY: localfabric
localfabric:
	go build -o $(BIN)/localfabric ./hack/localfabric

##@ Build

.PHONY: build
build: ## Build the provider and the agent into _output/bin
	go build -trimpath -ldflags "$(LDFLAGS)" -o $(BIN)/ ./cmd/provider
	CGO_ENABLED=0 go build -trimpath -ldflags "-s -w $(LDFLAGS)" -o $(BIN)/ ./cmd/edgeagent

.PHONY: cross
cross: ## Build the agent for every supported OS/arch into _output/cross and print the sizes
	@mkdir -p $(OUT)/cross
	@for t in $(CROSS_TARGETS); do \
		IFS=/ read -r os arch arm <<<"$$t"; \
		name=edgeagent-$$os-$$arch$${arm:+v$$arm}; [ $$os = windows ] && name=$$name.exe; \
		echo "building $$name"; \
		CGO_ENABLED=0 GOOS=$$os GOARCH=$$arch GOARM=$$arm \
			go build -trimpath -ldflags "-s -w $(LDFLAGS)" -o $(OUT)/cross/$$name ./cmd/edgeagent; \
	done
	@echo; printf '%10s  %8s  %s\n' bytes MiB binary
	@for f in $(OUT)/cross/edgeagent-*; do \
		b=$$(wc -c <$$f); printf '%10d  %8s  %s\n' $$b $$(awk "BEGIN{printf \"%.1f\", $$b/1048576}") $$f; \
	done

.PHONY: examples
examples: ## Build the example workloads into _output/examples (Go ones for wasip1; .wat ones if wat2wasm is installed; C ones for WASI if clang and wasi-libc are)
	@mkdir -p $(OUT)/examples
	@for d in examples/*/; do \
		n=$$(basename $$d); \
		if ls $$d*.go >/dev/null 2>&1; then \
			GOOS=wasip1 GOARCH=wasm CGO_ENABLED=0 go build -o $(OUT)/examples/$$n.wasm ./$$d; \
		fi; \
		for w in $$d*.wat; do \
			[ -e "$$w" ] || continue; \
			if command -v wat2wasm >/dev/null; then wat2wasm "$$w" -o $(OUT)/examples/$$(basename $$w .wat).wasm; \
			else echo "skipping $$w: wat2wasm not installed (Debian: wabt)"; fi; \
		done; \
		if ls $$d*.c >/dev/null 2>&1; then \
			if command -v clang >/dev/null && command -v wasm-ld >/dev/null && [ -e /usr/include/wasm32-wasi/stdio.h ]; then \
				clang --target=wasm32-wasi --sysroot=/usr -O2 -Wl,--strip-debug -o $(OUT)/examples/$$n.wasm $$d*.c; \
			else echo "skipping $$d: no C toolchain for WASI (Debian: clang lld wasi-libc libclang-rt-14-dev-wasm32)"; fi; \
		fi; \
		if [ -e $${d}main.rs ]; then \
			if [ -x /usr/bin/rustc ] && [ -d /usr/lib/rustlib/wasm32-wasi/lib ]; then \
				/usr/bin/rustc --edition=2021 --target=wasm32-wasi -O -C strip=symbols -o $(OUT)/examples/$$n.wasm $${d}main.rs; \
			else echo "skipping $$d: no Rust toolchain for WASI (Debian: rustc libstd-rust-dev-wasm32 lld)"; fi; \
		fi; \
	done

.PHONY: controlplane
controlplane: ## Build once (cached in ~/.cache/edgefabric) the Kubernetes control plane the tests and the local fabric use
	@bash hack/build-controlplane.sh

.PHONY: helm
helm: ## Build once (cached in ~/.cache/edgefabric) the helm CLI the chart tests and the local fabric use, and print its path
	@bash hack/build-helm.sh

.PHONY: image
image: ## Provider OCI image for linux/amd64 and linux/arm64 into _output/image (OCI layout + tarball); PUSH=ref [INSECURE=1] pushes it
	go run ./hack/image -out $(OUT)/image -version $(VERSION) $(if $(PUSH),-push $(PUSH)) $(if $(INSECURE),-insecure)

##@ Check

.PHONY: bench
bench: controlplane build ## Run the benchmarks (BENCH=regexp BENCHTIME=1s), then the end-to-end ones in test/bench (once each); see docs/benchmarks.md
	KUBEBUILDER_ASSETS="$(CONTROLPLANE)" go test $$(go list $(PKGS) | grep -v /test/bench) -run '^$$' -bench '$(BENCH)' -benchtime $(BENCHTIME) -benchmem -count=1 -timeout 60m -p 1
	KUBEBUILDER_ASSETS="$(CONTROLPLANE)" go test ./test/bench/ -run '^$$' -bench '$(BENCH)' -benchtime 1x -count=1 -timeout 30m

.PHONY: fuzz
fuzz: ## Run every fuzz target (go test -fuzz) for FUZZTIME each (default 30s), one after another; PKGS=./pkg/x/... narrows
	FUZZTIME=$(FUZZTIME) PKGS="$(PKGS)" bash hack/fuzz.sh

.PHONY: lint
lint: $(GOLANGCI_LINT) ## gofmt -l, go vet and golangci-lint (all run; fails if any fails)
	@bash hack/lint.sh $(GOLANGCI_LINT)

$(GOLANGCI_LINT): hack/tools/lint/go.mod hack/tools/lint/go.sum
	@mkdir -p $(dir $@)
	@echo "building golangci-lint ($$(cd hack/tools/lint && go list -m -f '{{.Version}}' github.com/golangci/golangci-lint/v2)) into $@"
	cd hack/tools/lint && go build -o $@ github.com/golangci/golangci-lint/v2/cmd/golangci-lint

.PHONY: deps
deps: ## Rewrite the lists of the packages each binary links (cmd/*/deps.txt) after a change of dependencies; read the diff; see docs/dependencies.md
	go test ./test/deps -run TestLinkedPackages -update -count=1

.PHONY: vulncheck
vulncheck: ## govulncheck over the provider and the agent, offline against the vulnerability database pinned in hack/tools/vuln (VULNDB=latest: the newest); fails on reachable findings
	@VULNDB="$(VULNDB)" bash hack/vulncheck.sh $(VULNCHECK_FLAGS)

.PHONY: generate
generate: ## Regenerate the protobuf/gRPC code in pkg/apis (needs protoc)
	bash hack/generate.sh

.PHONY: clean
clean: ## Remove _output (stop a running local fabric first: make down)
	rm -rf $(OUT)

.PHONY: help
help: ## Show this help
	@awk 'BEGIN {FS = ":.*##"; printf "usage: make <target> [VAR=value]\n"} \
		/^##@/ {printf "\n%s\n", substr($$0, 5)} \
		/^[a-zA-Z_-]+:.*?##/ {printf "  %-14s %s\n", $$1, $$2}' $(MAKEFILE_LIST)
