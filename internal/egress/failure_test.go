package egress

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"
	"testing"
)

func TestFailureOf(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		err  error
		want Failure
	}{
		{fmt.Errorf("post: %w", context.DeadlineExceeded), FailTimeout},
		{os.ErrDeadlineExceeded, FailTimeout},
		{context.Canceled, FailCanceled},
		{&net.DNSError{Err: "no such host", Name: "x.invalid"}, FailDNS},
		{&net.OpError{Op: "dial", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}, FailRefused},
		{&net.OpError{Op: "read", Err: os.NewSyscallError("read", syscall.ECONNRESET)}, FailReset},
		{syscall.EPIPE, FailReset},
		{syscall.EHOSTUNREACH, FailUnreachable},
		{fmt.Errorf("handshake: %w", &net.OpError{Op: "remote error", Err: errors.New("x")}), FailOther},
		{fmt.Errorf("tls: %w", x509.UnknownAuthorityError{}), FailTLS},
		{io.ErrUnexpectedEOF, FailClosed},
		{net.ErrClosed, FailClosed},
		{errors.New("something else"), FailOther},
	} {
		if got := FailureOf(tc.err); got != tc.want {
			t.Errorf("FailureOf(%v) = %d, want %d", tc.err, got, tc.want)
		}
	}
}
