package lambdart

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
)

// Runtime API paths and headers (version 2018-06-01), as documented for
// custom runtimes.
const (
	apiPrefix = "/2018-06-01/runtime"

	headerRequestID   = "Lambda-Runtime-Aws-Request-Id"
	headerDeadlineMs  = "Lambda-Runtime-Deadline-Ms"
	headerFunctionARN = "Lambda-Runtime-Invoked-Function-Arn"
	headerTraceID     = "Lambda-Runtime-Trace-Id"
	headerErrorType   = "Lambda-Runtime-Function-Error-Type"
	// trailerErrorBody carries a base64 error when a streamed response
	// fails midway; trailerErrorType is then set too.
	trailerErrorBody = "Lambda-Runtime-Function-Error-Body"

	// maxResponse is Lambda's limit on a synchronous response.
	maxResponse = 6 << 20
	// maxErrorBody bounds an error report.
	maxErrorBody = 1 << 20
)

// instanceKey tags a connection's context with the process it came from.
type instanceKey struct{}

func (r *Runtime) api() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+apiPrefix+"/invocation/next", r.handleNext)
	mux.HandleFunc("POST "+apiPrefix+"/invocation/{id}/response", r.handleResponse)
	mux.HandleFunc("POST "+apiPrefix+"/invocation/{id}/error", r.handleError)
	mux.HandleFunc("POST "+apiPrefix+"/init/error", r.handleInitError)
	return mux
}

// handleNext blocks until an invocation is ready for the calling process,
// then returns its event with the invocation's metadata in headers.
func (r *Runtime) handleNext(w http.ResponseWriter, req *http.Request) {
	inst, _ := req.Context().Value(instanceKey{}).(*instance)
	if inst == nil {
		apiError(w, http.StatusForbidden, "Runtime.NoFunction", "no function process made this connection")
		return
	}
	var inv *invocation
	select {
	case inv = <-inst.next:
	case <-req.Context().Done():
		return
	case <-r.done:
		apiError(w, http.StatusInternalServerError, "Runtime.Closed", "the runtime is shutting down")
		return
	}
	h := w.Header()
	h.Set(headerRequestID, inv.id)
	h.Set(headerDeadlineMs, strconv.FormatInt(inv.deadline.UnixMilli(), 10))
	h.Set(headerFunctionARN, r.arn)
	h.Set(headerTraceID, inv.trace)
	h.Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(inv.payload)
}

// handleResponse takes an invocation's response.
func (r *Runtime) handleResponse(w http.ResponseWriter, req *http.Request) {
	inv := r.claim(w, req)
	if inv == nil {
		return
	}
	body, err := io.ReadAll(io.LimitReader(req.Body, maxResponse+1))
	if err != nil {
		apiError(w, http.StatusBadRequest, "InvalidRequest", "reading the response: "+err.Error())
		return
	}
	if len(body) > maxResponse {
		fe := &FunctionError{Type: TypeResponseSize, Message: fmt.Sprintf("Response payload size exceeded maximum allowed payload size (%d bytes).", maxResponse)}
		inv.result <- result{err: fe}
		apiError(w, http.StatusRequestEntityTooLarge, "RequestEntityTooLarge", fe.Message)
		return
	}
	// A response streamed from a reader that failed midway ends with the
	// error in trailers: the invocation failed after all.
	if typ := req.Trailer.Get(headerErrorType); typ != "" {
		fe := &FunctionError{Type: typ}
		if raw, err := base64.StdEncoding.DecodeString(req.Trailer.Get(trailerErrorBody)); err == nil {
			_ = json.Unmarshal(raw, fe)
		}
		inv.result <- result{err: fe}
	} else {
		inv.result <- result{body: body}
	}
	accepted(w)
}

// handleError takes an invocation's error report.
func (r *Runtime) handleError(w http.ResponseWriter, req *http.Request) {
	inv := r.claim(w, req)
	if inv == nil {
		return
	}
	inv.result <- result{err: readError(req, false)}
	accepted(w)
}

// handleInitError records that the calling process failed to initialise;
// the next invocation's error is this one once the process has exited.
func (r *Runtime) handleInitError(w http.ResponseWriter, req *http.Request) {
	inst, _ := req.Context().Value(instanceKey{}).(*instance)
	fe := readError(req, true)
	if inst != nil {
		r.mu.Lock()
		inst.initErr = fe
		r.mu.Unlock()
	}
	accepted(w)
}

// claim takes the pending invocation named in the path for answering, or
// answers 400 as the Runtime API does for an unknown or already answered
// request id.
func (r *Runtime) claim(w http.ResponseWriter, req *http.Request) *invocation {
	id := req.PathValue("id")
	r.mu.Lock()
	inv := r.pending[id]
	if inv != nil && inv.answered {
		inv = nil
	}
	if inv != nil {
		inv.answered = true
	}
	r.mu.Unlock()
	if inv == nil {
		apiError(w, http.StatusBadRequest, "InvalidRequestID", fmt.Sprintf("no invocation %q is waiting for an answer", id))
	}
	return inv
}

// readError decodes an error report body (errorMessage, errorType,
// stackTrace), taking the type from the header when the body has none.
func readError(req *http.Request, init bool) *FunctionError {
	fe := &FunctionError{Init: init}
	body, err := io.ReadAll(io.LimitReader(req.Body, maxErrorBody))
	if err == nil && json.Unmarshal(body, fe) != nil {
		fe.Message = string(body)
	}
	if fe.Type == "" {
		fe.Type = req.Header.Get(headerErrorType)
	}
	if fe.Type == "" {
		fe.Type = "Unhandled"
	}
	return fe
}

func accepted(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusAccepted)
	_, _ = io.WriteString(w, `{"status":"OK"}`)
}

// apiError answers as the Runtime API does: a JSON errorMessage and
// errorType.
func apiError(w http.ResponseWriter, code int, typ, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(FunctionError{Type: typ, Message: msg})
}
