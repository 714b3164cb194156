#!/usr/bin/env bash
# Runs every fuzz target of the module for FUZZTIME each (default 30s), one
# after another (go test -fuzz takes one target of one package at a time).
# PKGS narrows the packages (default ./...). A crash is saved by go test under
# the package's testdata/fuzz/FuzzXxx/ and fails the run: keep that file as a
# regression seed and fix the bug.
set -euo pipefail
cd "$(dirname "$0")/.."
fuzztime=${FUZZTIME:-30s}
pkgs=${PKGS:-./...}
failed=()
for pkg in $(go list -f '{{if or .TestGoFiles .XTestGoFiles}}{{.ImportPath}}{{end}}' $pkgs); do
	# go test -list prints the matching names, then "ok <pkg> <time>".
	for target in $(go test -list '^Fuzz' "$pkg" | grep '^Fuzz' || true); do
		echo "== $pkg $target ($fuzztime)"
		if ! go test "$pkg" -run '^$' -fuzz "^${target}\$" -fuzztime "$fuzztime"; then
			failed+=("$pkg $target")
		fi
	done
done
if ((${#failed[@]})); then
	printf 'fuzz: failed: %s\n' "${failed[@]}" >&2
	exit 1
fi
