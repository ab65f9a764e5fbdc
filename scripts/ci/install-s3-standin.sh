#!/usr/bin/env bash
# Installs versitygw, the S3-compatible server the s3blob tests run against,
# into .ci/cache/bin (git-ignored). Idempotent: does nothing when the pinned
# version is already there. The tests find it through POSTERN_VERSITYGW or
# at that default path.
#
# Compiling versitygw builds a large module graph; expect a few minutes on a
# cold module and build cache.
set -euo pipefail
cd "$(dirname "$0")/../.."

version=v1.8.0
bindir="$PWD/.ci/cache/bin"
bin="$bindir/versitygw"
stamp="$bindir/versitygw.version"

if [ -x "$bin" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$version" ]; then
	echo "versitygw $version already installed at $bin"
	exit 0
fi

mkdir -p "$bindir"
start=$(date +%s)
# Outside the project module, so its go.mod is neither read nor changed.
(cd / && GOBIN="$bindir" GOFLAGS=-buildvcs=false go install "github.com/versity/versitygw/cmd/versitygw@$version")
echo "$version" >"$stamp"
echo "installed versitygw $version at $bin in $(($(date +%s) - start))s"
