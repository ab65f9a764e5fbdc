#!/usr/bin/env bash
# Installs aws-lambda-rie, AWS's Lambda Runtime Interface Emulator, which
# internal/awse2e runs a function bootstrap under to cross-check the
# Runtime API harness (internal/lambdart). Built from the Go module proxy
# at a pinned version (the module's tags are not served; the pseudo-version
# names the commit).
#
# Usage: scripts/ci/install-lambda-rie.sh
#
# Installs into $POSTERN_LAMBDA_RIE_DIR, default .ci/cache/bin
# (git-ignored). Idempotent: a second run with the same pinned version does
# nothing. The last line printed is
#   POSTERN_LAMBDA_RIE=<dir>/aws-lambda-rie
# the path the tests find by that environment variable, or at the default
# location without it.
set -euo pipefail

MODULE=github.com/aws/aws-lambda-runtime-interface-emulator
VERSION=v0.0.0-20261030222936-bef5c4ba774d

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
dir=${POSTERN_LAMBDA_RIE_DIR:-$root/.ci/cache/bin}
bin=$dir/aws-lambda-rie
want="$MODULE@$VERSION"

if [ "$(cat "$bin.version" 2>/dev/null)" = "$want" ] && [ -x "$bin" ]; then
	echo "install-lambda-rie: aws-lambda-rie $VERSION already in $dir" >&2
	echo "POSTERN_LAMBDA_RIE=$bin"
	exit 0
fi

command -v go >/dev/null || { echo "install-lambda-rie: go not found (install the Go version go.mod names)" >&2; exit 1; }
echo "install-lambda-rie: installing $want into $dir" >&2
mkdir -p "$dir"
# Outside the module, so go.mod is not touched and the emulator's own
# go.mod decides its dependencies.
(cd / && GOBIN=$dir GOFLAGS=-mod=mod CGO_ENABLED=0 go install "$MODULE/cmd/aws-lambda-rie@$VERSION")
echo "$want" >"$bin.version"
echo "POSTERN_LAMBDA_RIE=$bin"
