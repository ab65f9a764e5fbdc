// Package packaging tests what scripts/release ships: the systemd unit
// (systemd-analyze verify and security), the packaged config, and the .deb
// installed, upgraded with mail in flight, removed and purged.
package packaging
