package parse

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"strings"
	"time"

	"github.com/postern/postern/internal/authcheck"
	"github.com/postern/postern/internal/postern"
	"github.com/postern/postern/internal/route"
)

// DefaultAuthTimeout bounds the sender-authentication checks of one
// message: SPF's DNS lookups (at most ten with their own timeouts), every
// DKIM key and the DMARC records. The resolver times each lookup out
// sooner; this keeps a slow DNS from holding a job much longer.
const DefaultAuthTimeout = 20 * time.Second

// maxHeaderSignatures bounds the DKIM results in Authentication-Results.
const maxHeaderSignatures = 10

// Auth configures the sender-authentication checks. Without it (WithAuth
// not given) every message is trusted: verdicts none, reason trusted.
type Auth struct {
	// Resolver asks DNS: one per process (dnsresolve.New), so its cache
	// serves every message. Required when Internet is set.
	Resolver authcheck.Resolver
	// Internet reports whether an identity's mail gets verdicts
	// (identities[].internet); any other identity's mail is trusted, and
	// no DNS question is asked for it.
	Internet func(identity string) bool
	// AuthServID names this gateway in Authentication-Results (the
	// configured hostname); empty: the envelope's gateway.
	AuthServID string
	// Timeout bounds the checks of one message; DefaultAuthTimeout when 0.
	Timeout time.Duration
}

// Option changes a Handler built by New.
type Option func(*Handler)

// WithAuth checks SPF, DKIM and DMARC for the mail of internet
// identities. It panics on an Internet without a Resolver, at wiring time.
func WithAuth(a Auth) Option {
	if a.Internet != nil && a.Resolver == nil {
		panic("parse.WithAuth: Internet needs a Resolver")
	}
	if a.Timeout <= 0 {
		a.Timeout = DefaultAuthTimeout
	}
	return func(h *Handler) { h.auth = a }
}

// verdicts is what the checks give one message: the stored form, what
// rules match on (nil for trusted mail, which verdict rules never take),
// and the Authentication-Results value for the outgoing view ("" for
// trusted mail: no check ran, so there is nothing to state).
type verdicts struct {
	stored *postern.Auth
	route  *route.Verdicts
	header string
}

// verify checks the sender of the stored message, after the 250: DNS
// trouble gives temperror verdicts, never an error. The only error is the
// store's, when the raw message cannot be read: the job is then retried
// rather than delivered with verdicts the store's trouble made up.
func (h *Handler) verify(ctx context.Context, log *slog.Logger, env *postern.Envelope) (*verdicts, error) {
	ip, _ := netip.ParseAddr(env.ClientIP) // invalid: SPF says none
	in := authcheck.Input{ClientIP: ip, HELO: env.HELO, MailFrom: env.Sender}
	if h.auth.Internet == nil || !h.auth.Internet(env.Identity) {
		in.Trusted = true
		return &verdicts{stored: storedAuth(authcheck.Check(ctx, nil, in))}, nil
	}
	key := env.ID.RawKey()
	rc, err := h.store.Get(ctx, key)
	if err != nil {
		return nil, fmt.Errorf("get raw %s for sender checks: %w", key, err)
	}
	defer rc.Close()
	src := &readErr{r: rc}
	in.Message = src

	start := time.Now()
	cctx, cancel := context.WithTimeout(ctx, h.auth.Timeout)
	res := authcheck.Check(cctx, h.auth.Resolver, in)
	cancel()
	if src.err != nil {
		return nil, fmt.Errorf("read raw %s for sender checks: %w", key, src.err)
	}
	v := &verdicts{stored: storedAuth(res)}
	v.route = route.VerdictsOf(v.stored)
	dkim := make([]string, len(res.DKIM))
	for i, d := range res.DKIM {
		dkim[i] = string(d.Result)
		if d.Domain != "" {
			dkim[i] = d.Domain + "=" + dkim[i]
		}
	}
	id := h.auth.AuthServID
	if id == "" {
		id = env.Gateway
	}
	// The value travels in every job, and SQS caps a job's size: a message
	// with thousands of DKIM-Signature fields must not make it unsendable.
	// The first signatures are the ones verified (authcheck verifies ten);
	// parsed.json keeps every verdict.
	hdr := res
	if len(hdr.DKIM) > maxHeaderSignatures {
		hdr.DKIM = hdr.DKIM[:maxHeaderSignatures]
	}
	v.header = hdr.AuthenticationResults(id)
	log.InfoContext(ctx, "sender checked",
		"spf", string(res.SPF.Result), "spf_domain", res.SPF.Domain,
		"dkim", strings.Join(dkim, ","), "dmarc", string(res.DMARC.Result), "dmarc_domain", res.DMARC.Domain,
		"dmarc_policy", res.DMARC.Policy, "latency_ms", time.Since(start).Milliseconds())
	return v, nil
}

// readErr remembers the first error other than EOF its reader gave, since
// authcheck turns read errors into verdicts.
type readErr struct {
	r   io.Reader
	err error
}

func (r *readErr) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if err != nil && err != io.EOF && r.err == nil {
		r.err = err
	}
	return n, err
}

// storedAuth is res in parsed.json's form.
func storedAuth(res authcheck.Result) *postern.Auth {
	a := &postern.Auth{
		SPF: postern.AuthSPF{Result: string(res.SPF.Result), Domain: res.SPF.Domain, Scope: res.SPF.Scope, Reason: res.SPF.Reason},
		DMARC: postern.AuthDMARC{Result: string(res.DMARC.Result), Policy: res.DMARC.Policy, Domain: res.DMARC.Domain,
			AlignedSPF: res.DMARC.AlignedSPF, AlignedDKIM: res.DMARC.AlignedDKIM, Reason: res.DMARC.Reason},
		DKIM: make([]postern.AuthDKIM, len(res.DKIM)),
	}
	for i, d := range res.DKIM {
		a.DKIM[i] = postern.AuthDKIM{Result: string(d.Result), Domain: d.Domain, Selector: d.Selector, Algorithm: d.Algorithm, Reason: d.Reason}
	}
	if res.ARC != nil {
		a.ARC = &postern.AuthARC{Result: string(res.ARC.Result), Reason: res.ARC.Reason, Sets: make([]postern.AuthARCSet, len(res.ARC.Sets))}
		for i, s := range res.ARC.Sets {
			a.ARC.Sets[i] = postern.AuthARCSet(s)
		}
	}
	return a
}
