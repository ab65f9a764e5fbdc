// Package egress guards outbound HTTP: it builds clients whose dialer
// connects only to addresses a policy allows, so a configured URL cannot be
// turned against the host's own network (cloud metadata, loopback services).
package egress
