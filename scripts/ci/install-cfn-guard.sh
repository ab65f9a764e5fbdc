#!/usr/bin/env bash
# Installs cfn-guard, the CloudFormation policy checker that
# infra/templatetest runs over template.yaml with the rules in infra/guard/.
# The binary comes from the npm package @cdklabs/cdk-validator-cfnguard,
# which ships cfn-guard for Linux and macOS (x86_64 and aarch64); only the
# binary is kept, so no Node packages are installed.
#
# Usage: scripts/ci/install-cfn-guard.sh
#
# Installs into $POSTERN_CFN_GUARD_DIR, default .ci/cache/cfn-guard
# (git-ignored). Idempotent: a second run with the same pinned version does
# nothing. The last line printed is
#   POSTERN_CFN_GUARD=<dir>/cfn-guard
# the path the tests find by that environment variable, or at the default
# location without it.
set -euo pipefail

PACKAGE=@cdklabs/cdk-validator-cfnguard
PACKAGE_VERSION=0.0.62
# The registry's integrity for that tarball; npm pack checks it too.
PACKAGE_INTEGRITY=sha512-Sg2k8067B0AIJ82QFSLhHTUIqxOYTKABvVrTHiyc6j0rE2NHli2diIYqf+w+DkuDKCYYgMIOga3OrYMOHUw0mQ==
GUARD_VERSION=3.1.1

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
dir=${POSTERN_CFN_GUARD_DIR:-$root/.ci/cache/cfn-guard}
bin=$dir/cfn-guard
want="$PACKAGE@$PACKAGE_VERSION cfn-guard $GUARD_VERSION"

works() {
	[ -x "$bin" ] && [ "$("$bin" --version 2>/dev/null)" = "cfn-guard $GUARD_VERSION" ]
}

if [ "$(cat "$dir/.installed" 2>/dev/null)" = "$want" ] && works; then
	echo "install-cfn-guard: cfn-guard $GUARD_VERSION already in $dir" >&2
	echo "POSTERN_CFN_GUARD=$bin"
	exit 0
fi

case "$(uname -s)/$(uname -m)" in
Linux/x86_64 | Linux/amd64) platform=ubuntu/x86_64 ;;
Linux/aarch64 | Linux/arm64) platform=ubuntu/aarch64 ;;
Darwin/x86_64) platform=macos/x86_64 ;;
Darwin/arm64) platform=macos/aarch64 ;;
*)
	echo "install-cfn-guard: no cfn-guard binary in $PACKAGE for $(uname -s)/$(uname -m)" >&2
	exit 1
	;;
esac

command -v npm >/dev/null || { echo "install-cfn-guard: npm not found (apt-get install npm)" >&2; exit 1; }
command -v node >/dev/null || { echo "install-cfn-guard: node not found (apt-get install nodejs)" >&2; exit 1; }

echo "install-cfn-guard: installing $want into $dir" >&2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent "$PACKAGE@$PACKAGE_VERSION" >/dev/null)
tarball=$(ls "$work"/*.tgz)
got=sha512-$(node -e 'const c=require("crypto"),f=require("fs");process.stdout.write(c.createHash("sha512").update(f.readFileSync(process.argv[1])).digest("base64"))' "$tarball")
if [ "$got" != "$PACKAGE_INTEGRITY" ]; then
	echo "install-cfn-guard: $tarball has integrity $got, want $PACKAGE_INTEGRITY" >&2
	exit 1
fi
tar -xzf "$tarball" -C "$work" "package/bin/$platform/cfn-guard"

mkdir -p "$dir"
tmp=$(mktemp "$bin.XXXXXX")
cp "$work/package/bin/$platform/cfn-guard" "$tmp"
chmod 755 "$tmp"
mv -f "$tmp" "$bin"
works || {
	echo "install-cfn-guard: $bin does not report cfn-guard $GUARD_VERSION" >&2
	exit 1
}
echo "$want" >"$dir/.installed"
echo "install-cfn-guard: $("$bin" --version) ready" >&2
echo "POSTERN_CFN_GUARD=$bin"
