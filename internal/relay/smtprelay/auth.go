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
