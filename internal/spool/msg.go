package spool

import (
	"context"
	"fmt"
	"io"

	"github.com/postern/postern/internal/postern"
)

// Msg writes one message into the log: Write its bytes, then Commit or
// Abort. It is not safe for concurrent use.
type Msg struct {
	s       *Spool
	id      string
	buf     *[]byte // headerLen bytes of room, then buffered payload
	gen     uint64
	started bool // a frame of this message reached the log
	done    bool
	size    int64 // raw bytes written
}

// Begin starts message id, which must be a ULID in its 26-character text
// form: the mover quarantines frames with any other id.
func (s *Spool) Begin(id string) (*Msg, error) {
	if len(id) != idLen {
		return nil, fmt.Errorf("spool: message id %q is not %d characters", id, idLen)
	}
	if _, err := postern.ParseMsgID(id); err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	b := s.bufs.Get().(*[]byte)
	*b = append((*b)[:0], make([]byte, headerLen)...)
	return &Msg{s: s, id: id, buf: b}, nil
}

// Write buffers p, appending a chunk frame each time ChunkBytes are full.
func (m *Msg) Write(p []byte) (int, error) {
	if m.done {
		return 0, fmt.Errorf("spool: write to a finished message")
	}
	n := 0
	for len(p) > 0 {
		room := headerLen + m.s.opts.ChunkBytes - len(*m.buf)
		k := min(room, len(p))
		*m.buf = append(*m.buf, p[:k]...)
		p, n = p[k:], n+k
		m.size += int64(k)
		if len(*m.buf) == headerLen+m.s.opts.ChunkBytes {
			if err := m.flushChunk(); err != nil {
				return n, err
			}
		}
	}
	return n, nil
}

// ReadFrom reads r straight into the chunk buffer, saving io.Copy a copy of
// every byte through a buffer of its own.
func (m *Msg) ReadFrom(r io.Reader) (int64, error) {
	if m.done {
		return 0, fmt.Errorf("spool: write to a finished message")
	}
	var n int64
	for {
		full := headerLen + m.s.opts.ChunkBytes
		k, err := r.Read((*m.buf)[len(*m.buf):full])
		*m.buf = (*m.buf)[:len(*m.buf)+k]
		n += int64(k)
		m.size += int64(k)
		if len(*m.buf) == full {
			if ferr := m.flushChunk(); ferr != nil {
				return n, ferr
			}
		}
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return n, err
		}
	}
}

func (m *Msg) flushChunk() error {
	putHeader(*m.buf, frameChunk, m.id)
	if _, err := m.s.append(*m.buf, &m.gen, &m.started); err != nil {
		return err
	}
	*m.buf = (*m.buf)[:headerLen]
	return nil
}

// Commit appends the rest of the message and its commit frame (envelope
// and job) in one write, and returns once they are on disk: the message is
// then acknowledged, and the mover will deliver it to the store and queue.
// On error the message is abandoned and must not be acknowledged; an
// envelope and job too large for one frame give ErrTooLarge.
func (m *Msg) Commit(ctx context.Context, envelope, job []byte) error {
	if m.done {
		return fmt.Errorf("spool: commit of a finished message")
	}
	m.done = true
	defer m.release()
	if n := commitLen(envelope, job); n > maxPayload {
		if m.started {
			m.s.abandon(m.id)
		}
		return fmt.Errorf("%w: %d bytes, at most %d", ErrTooLarge, n, maxPayload)
	}
	frames := *m.buf
	if len(frames) > headerLen {
		putHeader(frames, frameChunk, m.id)
	} else {
		frames = frames[:0]
	}
	start := len(frames)
	frames = append(frames, make([]byte, headerLen)...)
	frames = commitPayload(frames, envelope, job)
	putHeader(frames[start:], frameCommit, m.id)
	*m.buf = frames
	end, err := m.s.append(frames, &m.gen, &m.started)
	if err != nil {
		if m.started {
			m.s.abandon(m.id)
		}
		return err
	}
	if err := m.s.waitDurable(ctx, m.id, end, m.gen); err != nil {
		return err
	}
	m.s.committed(end, m.size+int64(len(envelope)+len(job)))
	return nil
}

// Abort abandons the message: nothing of it will be delivered. It is a
// no-op after Commit.
func (m *Msg) Abort() {
	if m.done {
		return
	}
	m.done = true
	if m.started {
		m.s.abandon(m.id)
	}
	m.release()
}

func (m *Msg) release() {
	if cap(*m.buf) <= headerLen+m.s.opts.ChunkBytes+64<<10 {
		m.s.bufs.Put(m.buf)
	}
	m.buf = nil
}
