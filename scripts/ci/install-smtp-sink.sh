#!/usr/bin/env bash
# Installs Postfix's smtp-sink, a real SMTP server the relay tests run on
# loopback. Only the binary is used: the Postfix daemon is not configured
# to start (no policy-rc.d change is needed because nothing here runs it).
#
# Usage: scripts/ci/install-smtp-sink.sh   (as root, or with sudo available)
set -euo pipefail

if command -v smtp-sink >/dev/null 2>&1; then
	exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
	SUDO="sudo"
fi

export DEBIAN_FRONTEND=noninteractive
# Answer debconf up front: a "No configuration" Postfix never listens.
echo "postfix postfix/main_mailer_type select No configuration" | $SUDO debconf-set-selections
echo "postfix postfix/mailname string localhost" | $SUDO debconf-set-selections
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends postfix >/dev/null

# Debian puts smtp-sink in /usr/sbin; make sure tests find it on PATH.
if ! command -v smtp-sink >/dev/null 2>&1 && [ -x /usr/sbin/smtp-sink ]; then
	$SUDO ln -sf /usr/sbin/smtp-sink /usr/local/bin/smtp-sink
fi
command -v smtp-sink
