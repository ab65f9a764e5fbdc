// Package parse is the parse stage: it reads a stored raw message, writes its
// parsed form (JSON) and large attachments beside it, and routes it, queueing
// one job per matched route and one DSN job for the recipients nobody takes.
//
// Parsing never fails a message: whatever cannot be understood is listed in
// Parsed.Errors, and the message is delivered all the same.
package parse
