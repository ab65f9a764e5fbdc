// Package loadgen measures Postern's SMTP front door against the physical
// ceilings of this machine: a small SMTP load client that records the latency
// of every transaction, reference servers (go-smtp discarding DATA, and
// go-smtp writing each message with one fsync before replying), the ingest
// path alone with either sync mode, and a driver that runs them, Postfix and
// the real gateway side by side and prints one table.
//
// Everything binds loopback only. The driver is used by scripts/bench
// through cmd/postern-bench; the client and the servers are also used by
// the crash and fault tests in internal/crashtest.
package loadgen
