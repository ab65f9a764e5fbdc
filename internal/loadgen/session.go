package loadgen

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"
)

// Reply is an SMTP server reply: its code and the text of its last line.
type Reply struct {
	Code int
	Text string
}

// OK reports a 2xx reply.
func (r Reply) OK() bool { return r.Code >= 200 && r.Code < 300 }

// Temporary reports a 4xx reply: the client should try again later.
func (r Reply) Temporary() bool { return r.Code >= 400 && r.Code < 500 }

// LastWord is the reply text's last space-separated word: the message id
// in Postern's "250 2.0.0 OK <id>" and "451 4.3.0 ... <id>".
func (r Reply) LastWord() string {
	if i := strings.LastIndexByte(r.Text, ' '); i >= 0 {
		return r.Text[i+1:]
	}
	return r.Text
}

func (r Reply) String() string { return fmt.Sprintf("%d %s", r.Code, r.Text) }

// Session is one SMTP connection that sends any number of transactions. It
// is a deliberately small client (no pipelining, no TLS, no AUTH) so that
// its own cost stays out of the figures; not safe for concurrent use.
type Session struct {
	conn    net.Conn
	r       *bufio.Reader
	w       *bufio.Writer
	timeout time.Duration
}

// DefaultTimeout bounds each command's round trip when Dial is given none.
const DefaultTimeout = 60 * time.Second

// Dial connects to addr, reads the greeting and says EHLO. timeout bounds
// each later command; 0 means DefaultTimeout.
func Dial(ctx context.Context, addr, helo string, timeout time.Duration) (*Session, error) {
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", addr, err)
	}
	s := &Session{conn: c, r: bufio.NewReaderSize(c, 4096), w: bufio.NewWriterSize(c, 64<<10), timeout: timeout}
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if err := s.expect(ctx, 220, nil); err != nil {
		c.Close()
		return nil, fmt.Errorf("greeting from %s: %w", addr, err)
	}
	if err := s.expect(ctx, 250, []byte("EHLO "+helo+"\r\n")); err != nil {
		c.Close()
		return nil, fmt.Errorf("EHLO to %s: %w", addr, err)
	}
	return s, nil
}

// ReplyError is an unexpected reply to a command.
type ReplyError struct {
	Command string
	Reply   Reply
}

func (e *ReplyError) Error() string { return fmt.Sprintf("%s: %s", e.Command, e.Reply) }

// Send runs one transaction: MAIL, RCPT for each of to, DATA with header and
// body (which must already be dot-stuffed and end in CRLF). It returns the
// reply that ended the transaction: the reply to the end of DATA, or the
// first refusal, after which the transaction is reset. An error means the
// connection is no longer usable (I/O failure, timeout, ctx ended); the
// session must then be closed.
func (s *Session) Send(ctx context.Context, from string, to []string, header, body []byte) (Reply, error) {
	stop := context.AfterFunc(ctx, func() { s.conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	rep, err := s.cmd(ctx, []byte("MAIL FROM:<"+from+">\r\n"))
	if err != nil || !rep.OK() {
		return s.reset(ctx, rep, err)
	}
	accepted := 0
	var refusal Reply
	for _, rcpt := range to {
		rep, err := s.cmd(ctx, []byte("RCPT TO:<"+rcpt+">\r\n"))
		if err != nil {
			return rep, err
		}
		if rep.OK() {
			accepted++
		} else if refusal.Code == 0 {
			refusal = rep
		}
	}
	if accepted == 0 {
		return s.reset(ctx, refusal, nil)
	}
	rep, err = s.cmd(ctx, []byte("DATA\r\n"))
	if err != nil || rep.Code != 354 {
		return s.reset(ctx, rep, err)
	}
	if err := s.deadline(ctx, s.timeout+time.Duration(len(body))*time.Microsecond); err != nil {
		return Reply{}, err
	}
	for _, b := range [][]byte{header, body, []byte(".\r\n")} {
		if _, err := s.w.Write(b); err != nil {
			return Reply{}, fmt.Errorf("DATA: %w", err)
		}
	}
	if err := s.w.Flush(); err != nil {
		return Reply{}, fmt.Errorf("DATA: %w", err)
	}
	return s.read()
}

// reset ends a refused transaction with RSET so the next one starts clean.
func (s *Session) reset(ctx context.Context, rep Reply, err error) (Reply, error) {
	if err != nil {
		return rep, err
	}
	if _, rerr := s.cmd(ctx, []byte("RSET\r\n")); rerr != nil {
		return rep, rerr
	}
	return rep, nil
}

// Close says QUIT (waiting a second at most) and closes the connection.
func (s *Session) Close() error {
	s.conn.SetDeadline(time.Now().Add(time.Second))
	s.w.WriteString("QUIT\r\n")
	s.w.Flush()
	s.read()
	return s.conn.Close()
}

// Abort closes the connection without a word, as a crashing client would.
func (s *Session) Abort() error { return s.conn.Close() }

// deadline arms the connection's deadline d from now, unless ctx has ended:
// checking after arming closes the race with the AfterFunc that expires the
// deadline when ctx ends.
func (s *Session) deadline(ctx context.Context, d time.Duration) error {
	s.conn.SetDeadline(time.Now().Add(d))
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("smtp session: %w", err)
	}
	return nil
}

// cmd writes line and reads the reply, within the session's timeout.
func (s *Session) cmd(ctx context.Context, line []byte) (Reply, error) {
	if err := s.deadline(ctx, s.timeout); err != nil {
		return Reply{}, err
	}
	if _, err := s.w.Write(line); err != nil {
		return Reply{}, fmt.Errorf("write: %w", err)
	}
	if err := s.w.Flush(); err != nil {
		return Reply{}, fmt.Errorf("write: %w", err)
	}
	return s.read()
}

// expect runs cmd (or just reads, for the greeting) and wants code.
func (s *Session) expect(ctx context.Context, code int, line []byte) error {
	var rep Reply
	var err error
	if line == nil {
		if err := s.deadline(ctx, s.timeout); err != nil {
			return err
		}
		rep, err = s.read()
	} else {
		rep, err = s.cmd(ctx, line)
	}
	if err != nil {
		return err
	}
	if rep.Code != code {
		return &ReplyError{Command: strings.TrimSpace(string(line)), Reply: rep}
	}
	return nil
}

// read reads one (possibly multi-line) reply.
func (s *Session) read() (Reply, error) {
	for {
		line, err := s.r.ReadString('\n')
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return Reply{}, fmt.Errorf("read reply: %w", err)
		}
		line = strings.TrimRight(line, "\r\n")
		if len(line) < 3 {
			return Reply{}, fmt.Errorf("read reply: malformed line %q", line)
		}
		code, err := strconv.Atoi(line[:3])
		if err != nil {
			return Reply{}, fmt.Errorf("read reply: malformed line %q", line)
		}
		if len(line) > 3 && line[3] == '-' {
			continue
		}
		return Reply{Code: code, Text: strings.TrimSpace(line[3:])}, nil
	}
}
