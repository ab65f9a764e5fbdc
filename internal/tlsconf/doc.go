// Package tlsconf supplies the gateway's TLS server settings: a certificate
// loaded from files (and reloaded when they change) or a self-signed one, and
// a tls.Config that old devices can still reach when an operator opts in.
package tlsconf
