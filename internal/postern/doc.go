// Package postern holds Postern's domain types: message ids, the envelope,
// the parsed form of a message, the jobs that flow between stages, and the
// error classes every edge translates (temporary unless marked permanent).
//
// It imports no adapter and no transport; every other package may import it.
package postern
