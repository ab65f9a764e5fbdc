package smtpd

import (
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// frontConn is the connection go-smtp talks through. go-smtp hard-codes
// some replies the RFCs word differently, counts a whole DATA upload
// against one read deadline and goes on after a DATA timeout; the front
// door's corrections live here, in one place, so go-smtp stays unpatched:
//
//   - It hands go-smtp one command line per Read, so when a line arrives
//     go-smtp has answered every line before it. The front can then answer
//     a line itself (HELP, STARTTLS, unknown verbs, malformed MAIL/RCPT
//     arguments) without reordering replies, and always knows which command
//     a reply answers.
//   - It owns TLS: STARTTLS and implicit TLS are done here, above which
//     go-smtp sees plaintext. go-smtp's own STARTTLS would wrap the
//     connection in a TLS layer above this one, out of the front's sight.
//   - It owns every read deadline: a command line must be complete within
//     the command timeout of the server asking for it, however slowly the
//     bytes trickle; inside DATA (or a BDAT chunk) each read must come
//     within the command timeout and the whole upload within the data
//     timeout. When one fires the client hears 421 4.4.2 and the connection
//     is closed at once, so no late byte is ever read as a command.
//   - It corrects go-smtp's hard-coded replies (replies.go) on their way out.
//
// All methods but Close, TLS and the atomics are called from go-smtp's one
// goroutine for the connection, so the state below has no lock.
type frontConn struct {
	tc   *trackedConn // the client's TCP connection (after PROXY)
	conn net.Conn     // tc, or TLS over it
	cfg  *frontConfig
	log  *slog.Logger

	tlsState atomic.Pointer[tls.ConnectionState]
	closed   atomic.Bool
	closeMu  sync.Mutex

	// Read side.
	buf     []byte // bytes read from conn and not yet handed on: buf[r:w]
	r, w    int
	pending []byte // the rest of a line already passed, when p was short
	mode    readMode
	midLine bool // passing a line longer than buf; no command at its start
	// DATA: when it began and the last bytes passed (to find the end marker
	// across reads); BDAT: the bytes of the chunk still to pass.
	dataStart time.Time
	tail      [4]byte
	tailLen   int
	chunkLeft int64
	chunkLast bool

	// What go-smtp is doing, learnt from the commands passed and its replies.
	verb     string // the command go-smtp is answering
	greeted  bool   // a HELO/EHLO was answered 250 (since STARTTLS)
	needEHLO bool   // after STARTTLS, before a new EHLO
	txn      bool   // MAIL answered 250, transaction open
	utf8Txn  bool   // the open transaction's MAIL carried SMTPUTF8
	mailUTF8 bool   // the MAIL being answered carried SMTPUTF8
	authed   bool
	errors   int

	// Write side: reply lines from go-smtp until the last one of a reply.
	wbuf  []byte
	reply []string
}

type readMode int

const (
	modeCommand readMode = iota
	modeSASL             // the next line is an AUTH response, not a command
	modeData             // between 354 and the reply to the message
	modeChunk            // the bytes of a BDAT chunk
)

// frontConfig is what every front of one server shares.
type frontConfig struct {
	hostname    string
	tls         *tls.Config // nil: no STARTTLS
	cmdTimeout  time.Duration
	dataTimeout time.Duration
	maxLine     int
	observe     func(command string, code int)
}

// maxErrors ends a session after this many protocol errors, as Postfix's
// smtpd_hard_error_limit (20) does.
const maxErrors = 20

// errClientTimeout is returned to go-smtp once the front has answered a
// timeout and closed the connection. It wraps net.ErrClosed so go-smtp
// ends the session without a reply of its own.
var errClientTimeout = fmt.Errorf("smtpd: client timed out: %w", net.ErrClosed)

func newFront(tc *trackedConn, conn net.Conn, cfg *frontConfig, log *slog.Logger) *frontConn {
	size := max(4096, cfg.maxLine+2)
	f := &frontConn{tc: tc, conn: conn, cfg: cfg, log: log, buf: make([]byte, size)}
	if t, ok := conn.(*tls.Conn); ok {
		st := t.ConnectionState()
		f.tlsState.Store(&st)
	}
	return f
}

// TLS returns the connection's TLS state, nil before TLS.
func (f *frontConn) TLS() *tls.ConnectionState { return f.tlsState.Load() }

func (f *frontConn) LocalAddr() net.Addr  { return f.tc.LocalAddr() }
func (f *frontConn) RemoteAddr() net.Addr { return f.tc.RemoteAddr() }

// SetReadDeadline is ignored: the front sets its own (see the type).
func (f *frontConn) SetReadDeadline(time.Time) error { return nil }

func (f *frontConn) SetWriteDeadline(t time.Time) error { return f.tc.SetWriteDeadline(t) }

func (f *frontConn) SetDeadline(t time.Time) error { return f.tc.SetWriteDeadline(t) }

func (f *frontConn) Close() error {
	f.closeMu.Lock()
	defer f.closeMu.Unlock()
	if f.closed.Swap(true) {
		return nil
	}
	return f.conn.Close()
}

// ---- reading ----

func (f *frontConn) Read(p []byte) (int, error) {
	if f.closed.Load() {
		return 0, net.ErrClosed
	}
	if len(f.pending) > 0 {
		n := copy(p, f.pending)
		f.pending = f.pending[n:]
		return n, nil
	}
	switch f.mode {
	case modeData:
		return f.readData(p)
	case modeChunk:
		return f.readChunk(p)
	}
	for {
		line, err := f.readLine()
		if err != nil {
			return 0, f.readFailed(err)
		}
		if f.midLine || f.mode == modeSASL {
			f.midLine = line[len(line)-1] != '\n'
			if f.mode == modeSASL && !f.midLine {
				f.mode = modeCommand
			}
			return f.pass(p, line), nil
		}
		if line[len(line)-1] != '\n' {
			// Longer than the buffer: go-smtp's line limit refuses it.
			f.midLine = true
			return f.pass(p, line), nil
		}
		out, ok := f.command(line)
		if f.closed.Load() {
			return 0, net.ErrClosed
		}
		if ok {
			return f.pass(p, out), nil
		}
	}
}

// pass hands line (or as much as fits) to go-smtp.
func (f *frontConn) pass(p, line []byte) int {
	n := copy(p, line)
	if n < len(line) {
		f.pending = append(f.pending[:0], line[n:]...)
	}
	return n
}

// readLine returns the next line, with its line end, or as much of it as
// the buffer holds. The slice is valid until the next read. The whole line
// must arrive within the command timeout of this call.
func (f *frontConn) readLine() ([]byte, error) {
	deadlineSet := false
	for {
		if i := bytes.IndexByte(f.buf[f.r:f.w], '\n'); i >= 0 {
			line := f.buf[f.r : f.r+i+1]
			f.r += i + 1
			return line, nil
		}
		if f.r == 0 && f.w == len(f.buf) {
			line := f.buf[:f.w]
			f.r = f.w
			return line, nil
		}
		if !deadlineSet {
			f.tc.SetReadDeadline(time.Now().Add(f.cfg.cmdTimeout))
			deadlineSet = true
		}
		if err := f.fill(); err != nil {
			return nil, err
		}
	}
}

// fill reads more into buf, moving the unread bytes to its start first.
func (f *frontConn) fill() error {
	if f.r > 0 {
		f.w = copy(f.buf, f.buf[f.r:f.w])
		f.r = 0
	}
	n, err := f.conn.Read(f.buf[f.w:])
	f.w += n
	if n > 0 {
		return nil
	}
	if err == nil {
		err = io.ErrNoProgress
	}
	return err
}

// readFailed ends the session after a failed read: a timeout (or the
// server ending the session while draining) is answered 421 and the
// connection closed; anything else (the client left) just closes.
func (f *frontConn) readFailed(err error) error {
	var ne net.Error
	switch {
	case f.tc.killed.Load():
		f.writeDirect(421, "4.3.2", f.cfg.hostname+" Service shutting down, closing connection")
	case errors.As(err, &ne) && ne.Timeout():
		f.log.Info("session timed out", slog.String("stage", "gateway"), slog.String("state", f.stateName()), slog.Int("smtp_code", 421))
		f.writeDirect(421, "4.4.2", f.cfg.hostname+" Error: timeout exceeded")
	default:
		f.Close()
		if err == io.EOF {
			return io.EOF
		}
		return net.ErrClosed
	}
	f.Close()
	return errClientTimeout
}

func (f *frontConn) stateName() string {
	switch f.mode {
	case modeData:
		return "data"
	case modeChunk:
		return "bdat"
	case modeSASL:
		return "auth"
	}
	return "command"
}

// dataDeadline bounds the next read of an upload: idle for at most the
// command timeout, and the whole upload within the data timeout.
func (f *frontConn) dataDeadline() {
	d := time.Now().Add(f.cfg.cmdTimeout)
	if end := f.dataStart.Add(f.cfg.dataTimeout); end.Before(d) {
		d = end
	}
	f.tc.SetReadDeadline(d)
}

// readData passes message bytes, stopping right after the first possible
// end-of-data marker (CRLF "." CRLF) so that go-smtp never holds the
// commands a client pipelines after its message: they come through
// command(). go-smtp's own reader may not take every such marker as the
// end (it is stricter after a lone CR); it then simply reads on.
func (f *frontConn) readData(p []byte) (int, error) {
	if f.r == f.w {
		f.dataDeadline()
		if err := f.fill(); err != nil {
			return 0, f.readFailed(err)
		}
	}
	b := f.buf[f.r:f.w]
	if len(b) > len(p) {
		b = b[:len(p)]
	}
	n := copy(p, b[:f.scanData(b)])
	f.r += n
	return n, nil
}

func orNoProgress(err error) error {
	if err == nil {
		return io.ErrNoProgress
	}
	return err
}

var endOfData = []byte("\r\n.\r\n")

// scanData returns how many bytes of b to pass: all of them, or up to and
// including an end-of-data marker. The marker may straddle reads: the last
// bytes passed are kept in tail (which starts as CRLF, as DATA's first line
// is a line start).
func (f *frontConn) scanData(b []byte) int {
	// A marker that begins in the tail ends within b's first four bytes.
	var joint [8]byte
	t := f.tailLen
	j := copy(joint[:], f.tail[:t])
	j += copy(joint[j:], b[:min(len(b), 4)])
	n := len(b)
	if i := bytes.Index(joint[:j], endOfData); i >= 0 && i < t {
		n = i + len(endOfData) - t
	} else if i := bytes.Index(b, endOfData); i >= 0 {
		n = i + len(endOfData)
	}
	f.keepTail(b[:n])
	return n
}

func (f *frontConn) keepTail(b []byte) {
	if len(b) >= len(f.tail) {
		f.tailLen = copy(f.tail[:], b[len(b)-len(f.tail):])
		return
	}
	keep := min(f.tailLen, len(f.tail)-len(b))
	copy(f.tail[:], f.tail[f.tailLen-keep:f.tailLen])
	f.tailLen = keep + copy(f.tail[keep:], b)
}

// readChunk passes the bytes of a BDAT chunk, and not one more.
func (f *frontConn) readChunk(p []byte) (int, error) {
	if int64(len(p)) > f.chunkLeft {
		p = p[:f.chunkLeft]
	}
	var n int
	if f.r < f.w {
		n = copy(p, f.buf[f.r:f.w])
		f.r += n
	} else {
		f.dataDeadline()
		var err error
		n, err = f.conn.Read(p)
		if n == 0 {
			return 0, f.readFailed(orNoProgress(err))
		}
	}
	f.chunkLeft -= int64(n)
	if f.chunkLeft == 0 {
		f.mode = modeCommand
	}
	return n, nil
}

// ---- writing ----

// Write takes go-smtp's replies. go-smtp writes a reply line by line; the
// lines of one reply are gathered, corrected and sent in one write.
func (f *frontConn) Write(p []byte) (int, error) {
	if f.closed.Load() {
		return 0, net.ErrClosed
	}
	// The common case, a one-line reply in one write, without copying.
	if len(f.wbuf) == 0 && len(f.reply) == 0 && len(p) >= 6 && p[3] == ' ' &&
		bytes.Index(p, []byte("\r\n")) == len(p)-2 && !f.greeting(p) {
		if err := f.sendLine(p); err != nil {
			return 0, err
		}
		return len(p), nil
	}
	f.wbuf = append(f.wbuf, p...)
	for {
		i := bytes.Index(f.wbuf, []byte("\r\n"))
		if i < 0 {
			break
		}
		line := string(f.wbuf[:i])
		f.wbuf = f.wbuf[i+2:]
		f.reply = append(f.reply, line)
		if len(line) >= 4 && line[3] == '-' {
			continue
		}
		lines := f.reply
		f.reply = nil
		if err := f.sendReply(lines); err != nil {
			return 0, err
		}
	}
	if len(f.wbuf) == 0 {
		f.wbuf = f.wbuf[:0:0]
	}
	return len(p), nil
}

// greeting reports whether a reply starting with first is the 250 to
// HELO or EHLO, which correctGreeting rewrites whole.
func (f *frontConn) greeting(first []byte) bool {
	return (f.verb == "EHLO" || f.verb == "HELO") && bytes.HasPrefix(first, []byte("250"))
}

// sendLine sends a one-line reply (with its CRLF), corrected.
func (f *frontConn) sendLine(p []byte) error {
	if to := f.correction(p[:len(p)-2]); to != "" {
		p = []byte(to + "\r\n")
	}
	return f.emit(p)
}

// sendReply sends a reply gathered line by line (without line ends).
func (f *frontConn) sendReply(lines []string) error {
	greeting := f.greeting([]byte(lines[0]))
	if len(lines) == 1 && !greeting {
		return f.sendLine([]byte(lines[0] + "\r\n"))
	}
	if greeting {
		lines = f.correctGreeting(lines)
	}
	var b []byte
	for _, l := range lines {
		b = append(append(b, l...), "\r\n"...)
	}
	return f.emit(b)
}

// emit writes one whole reply, b, to the client and follows its effects on
// the session's state (its code is b's last line's).
func (f *frontConn) emit(b []byte) error {
	last := b[bytes.LastIndex(b[:len(b)-2], []byte("\n"))+1:]
	code := int(last[0]-'0')*100 + int(last[1]-'0')*10 + int(last[2]-'0')
	f.replied(code)
	_, err := f.conn.Write(b)
	f.counted(code)
	return err
}

// counted counts a protocol error and ends the session at maxErrors.
func (f *frontConn) counted(code int) {
	if !isProtocolError(code) {
		return
	}
	if f.errors++; f.errors >= maxErrors {
		f.log.Info("too many errors", slog.String("stage", "gateway"), slog.Int("smtp_code", 421))
		f.writeLines(421, "4.7.0", []string{f.cfg.hostname + " Error: too many errors"})
		f.Close()
	}
}

// writeDirect sends a reply of the front's own.
func (f *frontConn) writeDirect(code int, enh, text string) {
	f.writeLines(code, enh, []string{text})
	f.counted(code)
}

func (f *frontConn) writeLines(code int, enh string, texts []string) {
	var b strings.Builder
	for i, t := range texts {
		sep := ' '
		if i < len(texts)-1 {
			sep = '-'
		}
		if enh != "" {
			fmt.Fprintf(&b, "%d%c%s %s\r\n", code, sep, enh, t)
		} else {
			fmt.Fprintf(&b, "%d%c%s\r\n", code, sep, t)
		}
	}
	f.tc.SetWriteDeadline(time.Now().Add(f.cfg.cmdTimeout))
	io.WriteString(f.conn, b.String())
}

// isProtocolError: the replies that count towards maxErrors (the client
// got the protocol wrong; policy refusals such as 550 do not count).
func isProtocolError(code int) bool {
	switch code {
	case 500, 501, 502, 503, 504, 555:
		return true
	}
	return false
}

// replied follows go-smtp's state from its replies.
func (f *frontConn) replied(code int) {
	if f.mode == modeData && code != 354 {
		// The reply to the message: the transaction is over.
		f.mode, f.txn = modeCommand, false
		return
	}
	switch f.verb {
	case "HELO", "EHLO":
		if code == 250 {
			f.greeted, f.needEHLO, f.txn = true, false, false
		}
	case "MAIL":
		if code == 250 {
			f.txn, f.utf8Txn = true, f.mailUTF8
		}
	case "RSET":
		if code == 250 {
			f.txn = false
		}
	case "DATA":
		if code == 354 {
			f.mode = modeData
			f.dataStart = time.Now()
			f.tail, f.tailLen = [4]byte{'\r', '\n'}, 2
		}
	case "BDAT":
		if f.chunkLast || code >= 400 {
			f.txn = false
		}
	case "AUTH":
		switch code {
		case 334:
			f.mode = modeSASL
		case 235:
			f.authed = true
		}
	}
}
