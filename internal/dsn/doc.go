// Package dsn builds delivery status notifications (RFC 3464 in an RFC 6522
// multipart/report, RFC 6533 for internationalized addresses) from a Report.
//
// It is pure: no I/O, no clock, no randomness. The same Report always gives
// the same bytes, so a retried dsn stage sends the same notice with the same
// Message-ID. Who gets a notice, and whether one is sent at all, is policy and
// lives beside the queue in package notify, not here.
package dsn
