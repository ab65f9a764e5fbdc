package graphrelay

// SetLimits lowers t's limits (request, whole message, upload range) so
// tests can cross them without moving hundreds of megabytes.
func SetLimits(t *Transport, maxRequest, maxTotal, chunk int) {
	t.maxRequest, t.maxDraft, t.maxTotal, t.chunk = maxRequest, maxRequest/4*3, maxTotal, chunk
}

// UploadChunk is the range size of upload sessions.
const UploadChunk = uploadChunk
