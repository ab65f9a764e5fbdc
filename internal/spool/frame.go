package spool

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
)

// A log is a sequence of frames. Each frame is
//
//	length  uint32  big-endian length of the payload
//	crc     uint32  CRC-32C of everything after this field
//	type    byte    frameChunk or frameCommit
//	id      [26]byte the message id (a ULID in text form)
//	payload [length]byte
//
// A message is any number of chunk frames (its raw bytes in order, possibly
// interleaved with other messages' frames) followed by one commit frame
// holding its envelope and its job. A message without a commit frame was
// never acknowledged. A torn or corrupt frame ends the readable part of a
// segment: everything after it was written after the last flush that
// anyone waited for.
const (
	frameChunk  byte = 1
	frameCommit byte = 2

	idLen     = 26
	headerLen = 4 + 4 + 1 + idLen
	// maxPayload bounds one frame's payload, for the writer and the reader
	// alike: the reader allocates no more for one frame, so a corrupt
	// length cannot ask for gigabytes, and the writer refuses a commit that
	// would not fit (ErrTooLarge) rather than log a frame the reader would
	// take for a torn tail. Chunk frames are kept below it by Options.
	maxPayload = 4 << 20
)

// ErrTooLarge refuses a commit whose envelope and job exceed what one frame
// holds. The message is not acknowledged.
var ErrTooLarge = errors.New("spool: envelope and job exceed the largest frame the log can hold")

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// errTorn marks the end of the readable part of a segment.
var errTorn = errors.New("spool: torn or corrupt frame")

// putHeader fills the header in front of a payload that is already in
// place: frame must be headerLen bytes of room followed by the payload.
func putHeader(frame []byte, typ byte, id string) {
	payload := len(frame) - headerLen
	binary.BigEndian.PutUint32(frame[0:4], uint32(payload))
	frame[8] = typ
	copy(frame[9:headerLen], id)
	binary.BigEndian.PutUint32(frame[4:8], crc32.Checksum(frame[8:], castagnoli))
}

// appendFrame appends a whole frame to dst.
func appendFrame(dst []byte, typ byte, id string, payload []byte) []byte {
	start := len(dst)
	dst = append(dst, make([]byte, headerLen)...)
	dst = append(dst, payload...)
	putHeader(dst[start:], typ, id)
	return dst
}

// frame is one decoded frame; payload aliases the reader's buffer until the
// next call.
type frame struct {
	typ     byte
	id      string
	payload []byte
	size    int64 // bytes the frame takes in the log
}

// frameReader decodes frames from a segment.
type frameReader struct {
	r   *bufio.Reader
	buf []byte
	hdr [headerLen]byte
}

// next returns the next frame, io.EOF at a clean end, or errTorn.
func (fr *frameReader) next() (frame, error) {
	if _, err := io.ReadFull(fr.r, fr.hdr[:]); err != nil {
		if err == io.EOF {
			return frame{}, io.EOF
		}
		if err == io.ErrUnexpectedEOF {
			return frame{}, errTorn
		}
		return frame{}, err
	}
	n := binary.BigEndian.Uint32(fr.hdr[0:4])
	typ := fr.hdr[8]
	if n > maxPayload || (typ != frameChunk && typ != frameCommit) {
		return frame{}, errTorn
	}
	if cap(fr.buf) < int(n) {
		fr.buf = make([]byte, n)
	}
	p := fr.buf[:n]
	if _, err := io.ReadFull(fr.r, p); err != nil {
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return frame{}, errTorn
		}
		return frame{}, err
	}
	c := crc32.Update(crc32.Checksum(fr.hdr[8:], castagnoli), castagnoli, p)
	if c != binary.BigEndian.Uint32(fr.hdr[4:8]) {
		return frame{}, errTorn
	}
	return frame{typ: typ, id: string(fr.hdr[9:headerLen]), payload: p, size: int64(headerLen) + int64(n)}, nil
}

// commitLen is the length of commitPayload's result.
func commitLen(envelope, job []byte) int { return 4 + len(envelope) + len(job) }

// commitPayload joins a message's envelope and job.
func commitPayload(dst, envelope, job []byte) []byte {
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(envelope)))
	dst = append(dst, envelope...)
	return append(dst, job...)
}

func splitCommit(p []byte) (envelope, job []byte, err error) {
	if len(p) < 4 {
		return nil, nil, fmt.Errorf("spool: commit payload of %d bytes", len(p))
	}
	n := binary.BigEndian.Uint32(p)
	if uint64(n) > uint64(len(p)-4) {
		return nil, nil, fmt.Errorf("spool: commit payload envelope length %d of %d", n, len(p)-4)
	}
	return p[4 : 4+n], p[4+n:], nil
}
