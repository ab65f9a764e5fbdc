package smtpd

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/postern/postern/internal/postern"
)

// discardIngest reads the message and keeps nothing: the benchmark measures
// the front door alone.
type discardIngest struct{}

func (discardIngest) Accept(_ context.Context, _ *postern.Envelope, body io.Reader) error {
	_, err := io.Copy(io.Discard, body)
	return err
}

// BenchmarkTransaction is one pipelined SMTP transaction (MAIL, RCPT, DATA,
// the message, the end marker) over loopback on a reused connection, with
// a store that discards: the cost of the front door and go-smtp per message.
func BenchmarkTransaction(b *testing.B) {
	for _, size := range []int{10 << 10, 1 << 20} {
		b.Run(fmt.Sprintf("%dKiB", size>>10), func(b *testing.B) {
			cfg := testConfig()
			cfg.MaxMessageBytes = 4 << 20
			cfg.MaxRecipients = 10
			router := routerFunc(func(string, string, string) bool { return true })
			srv := New(cfg, loopback(), router, discardIngest{}, slog.New(slog.DiscardHandler))
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			go srv.Serve(l)
			defer srv.Close()
			c, err := net.Dial("tcp", l.Addr().String())
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(10 * time.Minute))
			r := bufio.NewReader(c)
			reply := func() string {
				for {
					line, err := r.ReadString('\n')
					if err != nil {
						b.Fatal(err)
					}
					if len(line) < 4 || line[3] != '-' {
						return line
					}
				}
			}
			reply()
			io.WriteString(c, "EHLO bench\r\n")
			reply()
			line := strings.Repeat("x", 76) + "\r\n"
			body := "Subject: bench\r\n\r\n" + strings.Repeat(line, size/len(line)) + ".\r\n"
			head := "MAIL FROM:<bench@lan>\r\nRCPT TO:<app@example.com>\r\nDATA\r\n"
			b.SetBytes(int64(len(body)))
			b.ResetTimer()
			for range b.N {
				io.WriteString(c, head)
				for range 3 {
					reply()
				}
				io.WriteString(c, body)
				if rep := reply(); !strings.HasPrefix(rep, "250") {
					b.Fatalf("reply %q", rep)
				}
			}
		})
	}
}
