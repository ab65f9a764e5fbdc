package egress

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"syscall"
)

// Failure is the kind of a failed outbound connection or exchange: what the
// webhook and relay stages report and decide on, in words that cannot leak
// addresses or URLs the way error texts can.
type Failure int

const (
	FailOther       Failure = iota
	FailTimeout             // deadline passed, or the network timed out
	FailCanceled            // the caller gave up
	FailDNS                 // name lookup failed
	FailRefused             // connection refused
	FailReset               // connection reset or broken pipe
	FailUnreachable         // host or network unreachable
	FailTLS                 // certificate or handshake failure
	FailClosed              // the peer closed the connection early
)

// FailureOf classifies err; errors it does not recognise are FailOther.
func FailureOf(err error) Failure {
	var (
		dns  *net.DNSError
		ne   net.Error
		cert *tls.CertificateVerificationError
		unk  x509.UnknownAuthorityError
		host x509.HostnameError
		rec  tls.RecordHeaderError
		alrt tls.AlertError
	)
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return FailTimeout
	case errors.Is(err, context.Canceled):
		return FailCanceled
	case errors.As(err, &dns):
		return FailDNS
	case errors.Is(err, syscall.ECONNREFUSED):
		return FailRefused
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return FailReset
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH):
		return FailUnreachable
	case errors.As(err, &cert), errors.As(err, &unk), errors.As(err, &host), errors.As(err, &rec), errors.As(err, &alrt):
		return FailTLS
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, net.ErrClosed):
		return FailClosed
	}
	return FailOther
}
