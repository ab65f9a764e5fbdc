// Package fsqueue is the local twin of Amazon SQS for queue.Queue: durable
// queues in one file on disk that survive kill -9, with visibility timeouts,
// delays, receive counts and dead-letter queues.
//
// It is built on go.etcd.io/bbolt, the well-kept embedded B+tree that etcd
// runs on, rather than on a spool of files, because bbolt keeps every queue
// in a single file with ACID transactions fsynced on commit, so claiming a
// message and raising its count, or moving it to the dead-letter queue, is
// one atomic step instead of a sequence of renames that a crash can cut in
// half. And one transaction can carry many callers' writes, so concurrent
// senders share a commit and its fsync (group commit, see committer), which
// a file per message, needing an fsync of its own, cannot do.
//
// # Layout
//
// A bucket per queue under "queues" holds two sub-buckets: "msgs" maps the
// 16-byte ULID of a message to its record (times, receive count, receipt
// token, body), and "ready" indexes every message by the time it becomes
// visible (8-byte big-endian unix nanoseconds, then the id), so Receive
// scans from the start of the index up to now and stops. A message in
// flight or delayed simply has a visible time in the future.
//
// # Receipts
//
// A receipt is the message id and a random token minted on each receive.
// Delete and ChangeVisibility accept the token of the latest receive, even
// once its visibility has run out (the consumer still did the work, and a
// late ack saves a duplicate), and refuse any other with an error wrapping
// queue.ErrInvalidReceipt.
package fsqueue
