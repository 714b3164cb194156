#!/usr/bin/env bash
# Regenerates the Go code under pkg/apis from its .proto files with the plugins
# pinned in hack/tools/proto. Needs protoc (Debian: protobuf-compiler).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin=$(mktemp -d)
trap 'rm -rf "$bin"' EXIT
(cd "$root/hack/tools/proto" && go build -o "$bin/" google.golang.org/protobuf/cmd/protoc-gen-go google.golang.org/grpc/cmd/protoc-gen-go-grpc)
cd "$root"
for f in $(find pkg/apis -name '*.proto'); do
	PATH="$bin:$PATH" protoc -I . -I /usr/include \
		--go_out=. --go_opt=module=github.com/edgefabric/edgefabric \
		--go-grpc_out=. --go-grpc_opt=module=github.com/edgefabric/edgefabric \
		"$f"
done
