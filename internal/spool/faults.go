package spool

import "os"

// Faults stands in for the log's file writes and flushes, so that tests
// outside this package (the crash and fault suite) can make them fail as a
// full or failing disk would. A nil field keeps the real operation. The
// gateway never sets them.
type Faults struct {
	// WriteAt writes b at off in a segment file (os.File.WriteAt).
	WriteAt func(f *os.File, b []byte, off int64) (int, error)
	// Sync makes a segment file's data durable (fdatasync).
	Sync func(f *os.File) error
}

// WithFaults returns o with the log's writes and flushes going through f.
func (o Options) WithFaults(f Faults) Options {
	if f.WriteAt != nil {
		o.writeAt = f.WriteAt
	}
	if f.Sync != nil {
		o.sync = f.Sync
	}
	return o
}
