package webhook

import (
	"context"
	"io"

	"github.com/postern/postern/internal/authview"
	"github.com/postern/postern/internal/postern"
)

// payloadAuth is the stored verdicts in the payload's form; nil for a
// parsed form written before senders were checked.
func payloadAuth(a *postern.Auth) *Auth {
	if a == nil {
		return nil
	}
	out := &Auth{
		SPF:   SPF(a.SPF),
		DKIM:  make([]DKIM, len(a.DKIM)),
		DMARC: DMARC(a.DMARC),
		ARC:   ARC{Result: "none", Sets: []ARCSet{}},
	}
	for i, d := range a.DKIM {
		out.DKIM[i] = DKIM(d)
	}
	if a.ARC != nil {
		out.ARC = ARC{Result: a.ARC.Result, Reason: a.ARC.Reason, Sets: make([]ARCSet, len(a.ARC.Sets))}
		for i, s := range a.ARC.Sets {
			out.ARC.Sets[i] = ARCSet(s)
		}
	}
	return out
}

// getRaw opens the message as a raw payload sends it: the job's
// Authentication-Results field first, then the stored message without
// fields forged in our name (authview.Reader); the stored message stays as
// received.
func (h *Handler) getRaw(ctx context.Context, job *postern.WebhookJob) (io.ReadCloser, error) {
	rc, err := h.get(ctx, job.ID.RawKey())
	if err != nil {
		return nil, err
	}
	if job.AuthResults == "" {
		return rc, nil
	}
	return prefixed{Reader: authview.Reader(job.AuthResults, rc), Closer: rc}, nil
}

type prefixed struct {
	io.Reader
	io.Closer
}
