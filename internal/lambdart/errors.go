package lambdart

import (
	"encoding/json"
	"errors"
)

// FunctionError is an invocation that did not produce a response: the
// function reported an error (its errorType and errorMessage as the
// runtime sent them), it crashed, or it ran out of time. Lambda's own
// failures use Lambda's error types: Runtime.ExitError, Sandbox.Timedout,
// Function.ResponseSizeTooLarge.
type FunctionError struct {
	Message    string          `json:"errorMessage"`
	Type       string          `json:"errorType"`
	StackTrace json.RawMessage `json:"stackTrace,omitempty"`
	// Init is true when the function failed before taking the invocation
	// (it posted to /runtime/init/error, or exited while initialising).
	Init bool `json:"-"`
}

func (e *FunctionError) Error() string {
	if e.Init {
		return "function init failed: " + e.Type + ": " + e.Message
	}
	return "function error: " + e.Type + ": " + e.Message
}

// Error types Lambda itself reports.
const (
	TypeExit         = "Runtime.ExitError"
	TypeTimeout      = "Sandbox.Timedout"
	TypeResponseSize = "Function.ResponseSizeTooLarge"
)

// ErrClosed is returned by Invoke on a closed Runtime.
var ErrClosed = errors.New("lambdart: runtime closed")
