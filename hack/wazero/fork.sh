#!/usr/bin/env bash
# Regenerates third_party/wazero: wazero at the version go.mod requires, from
# the Go module cache (the module proxy), without its tests, examples, CLI and
# site, with hack/wazero/*.patch applied in order. go.mod replaces the module
# with that directory. Run it after changing a patch or the version, then
# commit the result; builds and CI never run it.
set -euo pipefail
cd "$(dirname "$0")/../.."
version=$(go list -m -f '{{.Version}}' github.com/tetratelabs/wazero)
src=$(go mod download -json "github.com/tetratelabs/wazero@${version}" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')
# WAZERO_FORK_DIR writes the copy elsewhere (a test compares it with the
# committed one). WAZERO_FORK_TESTS=1 keeps wazero's tests and their testdata
# (hack/wazero/test.sh runs them against the patched tree).
dst=${WAZERO_FORK_DIR:-third_party/wazero}
rm -rf "$dst"
mkdir -p "$dst"
dst=$(cd "$dst" && pwd)
# The patches apply to the whole module (they may change wazero's tests too);
# the copy then takes what the build needs from it.
full=$(mktemp -d)
trap 'rm -rf "$full"' EXIT
cp -Rp "$src/." "$full/"
chmod -R u+w "$full"
for p in hack/wazero/*.patch; do
	[ -e "$p" ] || continue
	patch -s -p1 -d "$full" <"$p"
done
(
	cd "$full"
	if [ "${WAZERO_FORK_TESTS:-}" = 1 ]; then
		find . -type f ! -name '*.orig' -print0 | xargs -0 cp --parents -p -t "$dst"
	else
		find . -type f \( -name '*.go' -o -name '*.s' \) ! -name '*_test.go' \
			! -path './cmd/*' ! -path './examples/*' ! -path './site/*' \
			! -path './internal/integration_test/*' ! -path './internal/testing/*' \
			! -path '*/testdata/*' ! -path './imports/assemblyscript/*' ! -path './imports/emscripten/*' \
			-print0 | xargs -0 cp --parents -t "$dst"
		cp go.mod LICENSE NOTICE "$dst/"
	fi
)
echo "wazero ${version} in ${dst}, patches applied: $(cd hack/wazero && ls *.patch 2>/dev/null | tr "\n" " ")"
