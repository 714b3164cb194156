#!/usr/bin/env bash
# Builds the helm CLI from the Go module proxy at the version pinned in
# hack/tools/helm/go.mod, into a cache outside the clone, and prints the path of the
# binary (the chart tests find it through EDGEFABRIC_HELM). A binary already built
# for the same pin is reused. Kept apart from hack/build-controlplane.sh so that
# changing helm's pin never invalidates the control plane's cache.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
cache=${EDGEFABRIC_CACHE:-$HOME/.cache/edgefabric}
key=$(cat "$here"/tools/helm/go.mod "$here"/tools/helm/go.sum "$0" | sha256sum | cut -c1-12)
version=$(cd "$here/tools/helm" && go list -m -f '{{.Version}}' helm.sh/helm/v3)
out="$cache/helm-$version-$key/helm"

if [ -x "$out" ]; then
	echo "$out"
	exit 0
fi

mkdir -p "$cache"
# Test packages started in parallel may all find the cache cold: one builds, the
# others wait for it and then reuse its result.
if command -v flock >/dev/null; then
	exec 9>"$cache/.helm.lock"
	if ! flock -n 9; then
		echo "build-helm: waiting for another build of helm to finish" >&2
		flock 9
	fi
	if [ -x "$out" ]; then
		echo "$out"
		exit 0
	fi
fi

mkdir -p "$(dirname "$out")"
echo "build-helm: building helm $version" >&2
# As helm's own Makefile does: the version, and the Kubernetes version that
# `helm template` and `helm lint` assume, from the client-go helm is built with.
p=helm.sh/helm/v3
kube=$(cd "$here/tools/helm" && go list -m -f '{{.Version}}' k8s.io/client-go) # v0.MINOR.PATCH
kminor=$(echo "$kube" | cut -d. -f2)
ldflags="-s -w -X $p/internal/version.version=$version -X $p/internal/version.gitTreeState=clean -X $p/internal/version.metadata=edgefabric"
for v in $p/pkg/lint/rules $p/pkg/chartutil; do
	ldflags+=" -X $v.k8sVersionMajor=1 -X $v.k8sVersionMinor=$kminor"
done
(cd "$here/tools/helm" && CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" \
	-o "$out.tmp" helm.sh/helm/v3/cmd/helm)
mv "$out.tmp" "$out"
echo "$out"
