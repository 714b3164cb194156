#!/usr/bin/env bash
# Runs govulncheck over the provider and the agent (source mode: only
# vulnerabilities their code can reach count) and fails if it finds any.
#
# govulncheck and the vulnerability database both come from the Go module proxy,
# since nothing else is reachable from CI: hack/tools/vuln/go.mod pins
# golang.org/x/vuln (govulncheck) and golang.org/x/vulndb, whose module zip holds
# every report as OSV JSON (data/osv); x/vulndb's own cmd/indexdb turns those into
# the file layout `govulncheck -db file://` reads (index/db.json,
# index/modules.json, ID/GO-YYYY-NNNN.json). Both tools and the database are built
# once into the cache, keyed by the pin's hash, and reused.
#
# The database is as fresh as the pin: bump it with
#   cd hack/tools/vuln && go get golang.org/x/vulndb@latest && go mod tidy
# VULNDB=latest (or a version of golang.org/x/vulndb) checks against that
# version's reports instead, without touching the pin.
# Extra arguments go to govulncheck before the packages (e.g. -show verbose).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
mod="$here/tools/vuln"
cache=${EDGEFABRIC_CACHE:-$HOME/.cache/edgefabric}
# govulncheck type-checks the standard library of the Go that runs it, so it is
# built by that Go: the key includes its version.
key=$( (cat "$mod/go.mod" "$mod/go.sum" "$0"; go env GOVERSION) | sha256sum | cut -c1-12)
bin="$cache/tools/vuln-$key"

# The reports' version and its commit time: the pin, or VULNDB resolved on the proxy.
q=golang.org/x/vulndb${VULNDB:+@$VULNDB}
info=$(cd "$mod" && go list -m -f '{{.Version}} {{.Time.UTC.Format "2006-01-02T15:04:05Z"}}' "$q")
read -r version stamp <<<"$info"
db="$cache/vulndb-$version-$key"

mkdir -p "$cache/tools"
# Parallel runs may all find the cache cold: one builds, the others wait for it.
if command -v flock >/dev/null; then
	exec 9>"$cache/.vulncheck.lock"
	if ! flock -n 9; then
		echo "vulncheck: waiting for another build of govulncheck or its database to finish" >&2
		flock 9
	fi
fi

if [ ! -x "$bin/govulncheck" ] || [ ! -x "$bin/indexdb" ]; then
	echo "vulncheck: building govulncheck $(cd "$mod" && go list -m -f '{{.Version}}' golang.org/x/vuln) into $bin" >&2
	(cd "$mod" && go build -trimpath -o "$bin.tmp/" golang.org/x/vuln/cmd/govulncheck golang.org/x/vulndb/cmd/indexdb)
	rm -rf "$bin"
	mv "$bin.tmp" "$bin"
fi

if [ ! -e "$db/index/db.json" ]; then
	echo "vulncheck: building the vulnerability database from golang.org/x/vulndb@$version into $db" >&2
	if [ -n "${VULNDB:-}" ]; then
		# Outside any module, so that the tools module's go.sum stays as it is.
		json=$(cd / && GOWORK=off GOFLAGS=-mod=mod go mod download -json "golang.org/x/vulndb@$version")
	else
		json=$(cd "$mod" && go mod download -json golang.org/x/vulndb)
	fi
	src=$(sed -n 's/^\t"Dir": "\(.*\)",$/\1/p' <<<"$json")
	if [ ! -d "$src/data/osv" ]; then
		echo "vulncheck: golang.org/x/vulndb@$version has no data/osv (in $src)" >&2
		exit 1
	fi
	rm -rf "$db.tmp"
	"$bin/indexdb" -vulns "$src/data/osv" -out "$db.tmp"
	# The OSV files in the repository carry no modification times (the
	# generator sets them from git); say the database is as new as its commit.
	printf '{"modified":"%s"}' "$stamp" >"$db.tmp/index/db.json"
	# A file:// database is read uncompressed; the .gz copies are for serving.
	find "$db.tmp" -name '*.gz' -delete
	rm -rf "$db"
	mv "$db.tmp" "$db"
fi
if command -v flock >/dev/null; then
	flock -u 9
fi

# affected PATH VERSION prints the IDs of the database's reports on module PATH
# that VERSION is not known to be fixed in (no fixed version, or an older one).
# The index says nothing of where a report starts, so it errs towards too many.
affected() {
	local path=$1 v=${2#v} e id fixed
	{ grep -o "{\"path\":\"${path//./\\.}\",\"vulns\":\[[^]]*\]}" "$db/index/modules.json" || true; } |
		{ grep -o '{"id":[^}]*}' || true; } | while read -r e; do
		id=$(sed -n 's/.*"id":"\([^"]*\)".*/\1/p' <<<"$e")
		fixed=$(sed -n 's/.*"fixed":"\([^"]*\)".*/\1/p' <<<"$e")
		if [ -z "$fixed" ] || { [ "$fixed" != "$v" ] && [ "$(printf '%s\n' "$v" "$fixed" | sort -V | head -1)" = "$v" ]; }; then
			echo "$id${fixed:+ (fixed in v$fixed)}"
		fi
	done | sort -u
}

cd "$root"
# govulncheck knows no version for a module replaced by a directory (the wazero
# fork in third_party), so it never matches reports on it: look those up by the
# version the fork is made from, and fail on any (port the fix to the fork and
# move it to a fixed version: hack/wazero/fork.sh).
forked=0
while read -r path v; do
	ids=$(affected "$path" "$v")
	if [ -n "$ids" ]; then
		echo "vulncheck: $path is replaced by a directory made from $v, which these reports may affect (govulncheck cannot tell):" >&2
		sed 's/^/  /' <<<"$ids" >&2
		forked=1
	fi
done < <(go list -m -f '{{if .Replace}}{{if not .Replace.Version}}{{.Path}} {{.Version}}{{end}}{{end}}' all | grep . || true)

echo "vulncheck: govulncheck against golang.org/x/vulndb@$version ($stamp)" >&2
rc=0
"$bin/govulncheck" -db "file://$db" "$@" ./cmd/provider ./cmd/edgeagent || rc=$?
if [ "$rc" = 0 ] && [ "$forked" = 1 ]; then
	rc=1
fi
exit "$rc"
