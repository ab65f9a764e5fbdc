#!/usr/bin/env bash
# Installs the Dockerfile linter internal/packaging runs on
# packaging/docker/Dockerfile: dockerfile-utils (the linter of the Docker
# language server, from npm) on the machine's node. Debian packages no
# Dockerfile linter (hadolint is not in Debian).
#
# Usage: scripts/ci/install-dockerfile-lint.sh
#
# Installs into $POSTERN_DOCKERFILE_LINT_DIR, default .ci/cache/dockerfile-utils
# (git-ignored). Idempotent. Its dependencies are caret ranges; --before pins
# them to what the registry held on NPM_BEFORE. The last line printed is
#   POSTERN_DOCKERFILE_UTILS=<dir>/node_modules/.bin/dockerfile-utils
# which the test finds by that environment variable, or at the default place.
set -euo pipefail

DOCKERFILE_UTILS_VERSION=0.16.3
NPM_BEFORE=2026-11-22T00:00:00Z

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
dir=${POSTERN_DOCKERFILE_LINT_DIR:-$root/.ci/cache/dockerfile-utils}
want="dockerfile-utils@$DOCKERFILE_UTILS_VERSION before=$NPM_BEFORE"
bin=$dir/node_modules/.bin/dockerfile-utils

if [ "$(cat "$dir/.installed" 2>/dev/null)" != "$want" ] || ! "$bin" --version >/dev/null 2>&1; then
	command -v npm >/dev/null || { echo "install-dockerfile-lint: npm not found (apt-get install npm)" >&2; exit 1; }
	echo "install-dockerfile-lint: installing $want into $dir" >&2
	rm -rf "$dir"
	mkdir -p "$dir"
	printf '{\n  "private": true,\n  "description": "Dockerfile linter for tests (scripts/ci/install-dockerfile-lint.sh)"\n}\n' >"$dir/package.json"
	npm install --prefix "$dir" --no-audit --no-fund --save-exact --ignore-scripts \
		--before="$NPM_BEFORE" "dockerfile-utils@$DOCKERFILE_UTILS_VERSION" >&2
	"$bin" --version >/dev/null || { echo "install-dockerfile-lint: $bin does not run" >&2; exit 1; }
	echo "$want" >"$dir/.installed"
fi
echo "install-dockerfile-lint: dockerfile-utils $("$bin" --version) ready" >&2
echo "POSTERN_DOCKERFILE_UTILS=$bin"
