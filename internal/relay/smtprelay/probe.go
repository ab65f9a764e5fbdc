package smtprelay

import (
	"context"
	"errors"
	"fmt"
)

// Probe steps, in the order a session takes them.
const (
	ProbeConnect = "connect" // TCP, TLS, greeting, EHLO, STARTTLS
	ProbeAuth    = "auth"    // the credentials (password or XOAUTH2 token)
)

// ProbeError says which step of a probe failed; Err is the smarthost's
// reply (an *smtp.SMTPError) or the network or TLS error.
type ProbeError struct {
	Step string // ProbeConnect or ProbeAuth
	Err  error
}

func (e *ProbeError) Error() string { return fmt.Sprintf("smtprelay: probe %s: %v", e.Step, e.Err) }
func (e *ProbeError) Unwrap() error { return e.Err }

// Probe checks that the smarthost takes this transport's credentials
// without sending anything: it connects, greets, secures the connection
// and authenticates exactly as Send does, then says QUIT. It never sends
// MAIL, so no message and no bounce can come of it. A failure is a
// *ProbeError; a credential that could not be had (the token or password
// source failed) is returned as that source's error.
func (t *Transport) Probe(ctx context.Context) error {
	pass, err := t.password(ctx)
	if err != nil {
		return err
	}
	s, err := t.open(ctx, pass)
	if err != nil {
		step := ProbeConnect
		var ae *authError
		if errors.As(err, &ae) {
			step, err = ProbeAuth, ae.err
		}
		return &ProbeError{Step: step, Err: err}
	}
	defer s.close()
	s.quit()
	return nil
}
