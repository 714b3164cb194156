#!/usr/bin/env bash
# Runs every check of `make lint` and fails at the end if any failed, so that one
# run shows all problems: gofmt -l, go vet, golangci-lint ($1: its binary).
set -uo pipefail
cd "$(dirname "$0")/.."
golangci_lint=$1
failed=()

echo "==> gofmt -l"
files=$(find . -name '*.go' -not -path './_output/*' -not -path './.git/*' -print0 | xargs -0 gofmt -l)
if [ -n "$files" ]; then
	echo "these files need gofmt -w:"
	echo "$files"
	failed+=(gofmt)
fi

echo "==> go vet ./..."
go vet ./... || failed+=("go vet")

echo "==> golangci-lint run ./..."
"$golangci_lint" run ./... || failed+=(golangci-lint)

if ((${#failed[@]})); then
	echo "lint failed: ${failed[*]}"
	exit 1
fi
echo "lint passed"
