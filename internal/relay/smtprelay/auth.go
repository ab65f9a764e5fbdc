package smtprelay

import (
	"errors"

	"github.com/emersion/go-sasl"
)

// loginClient is the client side of AUTH LOGIN. go-sasl's sends the user
// name as an initial response and insists on the exact challenge
// "Password:"; this one waits for both challenges and answers them in
// order, whatever their wording, which more servers accept.
type loginClient struct {
	user, pass string
	step       int
}

var _ sasl.Client = (*loginClient)(nil)

func (a *loginClient) Start() (string, []byte, error) { return "LOGIN", nil, nil }

func (a *loginClient) Next(challenge []byte) ([]byte, error) {
	a.step++
	switch a.step {
	case 1:
		return []byte(a.user), nil
	case 2:
		return []byte(a.pass), nil
	}
	return nil, errors.New("smtprelay: unexpected AUTH LOGIN challenge")
}

// xoauth2Client is the client side of AUTH XOAUTH2, the bearer-token
// mechanism of Google's and Microsoft's SMTP submission (go-sasl has only
// the standard OAUTHBEARER, which neither takes). The initial response is
// "user=" user ^A "auth=Bearer " token ^A ^A. A refused token draws a 334
// whose challenge is a base64 JSON error ({"status":"401",...}); the
// client must answer it with an empty line, and the server then says 535.
type xoauth2Client struct {
	user, token string
	challenged  bool
}

var _ sasl.Client = (*xoauth2Client)(nil)

func (a *xoauth2Client) Start() (string, []byte, error) {
	return "XOAUTH2", []byte("user=" + a.user + "\x01auth=Bearer " + a.token + "\x01\x01"), nil
}

func (a *xoauth2Client) Next(challenge []byte) ([]byte, error) {
	if a.challenged {
		return nil, errors.New("smtprelay: unexpected second AUTH XOAUTH2 challenge")
	}
	a.challenged = true
	// Non-nil and empty: go-smtp sends it as an empty line.
	return []byte{}, nil
}

// authError marks a refusal of AUTH, so that Send can tell it from the
// other set-up failures; the reply inside is classified as before.
type authError struct{ err error }

func (e *authError) Error() string { return e.err.Error() }
func (e *authError) Unwrap() error { return e.err }
