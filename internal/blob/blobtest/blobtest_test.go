package blobtest_test

import (
	"testing"

	"github.com/postern/postern/internal/blob"
	"github.com/postern/postern/internal/blob/blobtest"
	"github.com/postern/postern/internal/blob/memblob"
)

// The suite passing against an in-memory driver shows that its cases
// assume only the blob.Store contract, nothing of a filesystem or of S3.
func TestSuiteAgainstMemory(t *testing.T) {
	blobtest.Run(t, func(t *testing.T) blob.Store { return memblob.New() })
}
