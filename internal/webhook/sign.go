package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Standard Webhooks header names. Receivers look these up case-insensitively.
const (
	HeaderID        = "webhook-id"
	HeaderTimestamp = "webhook-timestamp"
	HeaderSignature = "webhook-signature"
	// HeaderEnvelope carries a raw payload's envelope (RawEnvelope) as
	// base64url JSON: ASCII only, so nothing in an address can break the
	// header. When present it is signed with the body: the signed content
	// is id.timestamp.envelope.body (signedBody).
	HeaderEnvelope = "webhook-postern-envelope"
)

// DefaultTolerance is the clock skew Verify accepts when given none: the
// value the Standard Webhooks reference libraries use against replays.
const DefaultTolerance = 5 * time.Minute

// secretPrefix marks a Standard Webhooks secret: the key is base64 after it.
const secretPrefix = "whsec_"

// maxSignatures bounds the work Verify does on one header, so a hostile
// sender cannot make a receiver compute thousands of HMACs per request.
const maxSignatures = 16

// Errors Verify returns (wrapped), so receivers can tell a stale request
// from a forged one in their own logs.
var (
	ErrMissingHeader = errors.New("webhook: missing header")
	ErrTimestamp     = errors.New("webhook: timestamp outside tolerance")
	ErrSignature     = errors.New("webhook: no matching signature")
)

// Sign returns the Standard Webhooks v1 signature of one request:
// "v1," + base64(HMAC-SHA256(secret, id + "." + unix seconds + "." + body)).
// The id and timestamp are signed with the body so a captured request cannot
// be replayed under another id or, past the tolerance, at another time.
func Sign(secret []byte, id string, ts time.Time, body []byte) string {
	return "v1," + base64.StdEncoding.EncodeToString(mac(secret, id, ts.Unix(), body))
}

func mac(secret []byte, id string, unix int64, body []byte) []byte {
	m := newMAC(secret, id, unix)
	m.Write(body)
	return m.Sum(nil)
}

// newMAC returns an HMAC that has taken the signed prefix "id.unix." and
// wants the body next.
func newMAC(secret []byte, id string, unix int64) hash.Hash {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(id + "." + strconv.FormatInt(unix, 10) + "."))
	return m
}

// signReader is signatures over a stream: it reads r once, so a raw message
// is signed without being held in memory, and reports how many bytes it read.
func signReader(secrets [][]byte, id string, ts time.Time, r io.Reader) (string, int64, error) {
	macs := make([]hash.Hash, len(secrets))
	ws := make([]io.Writer, len(secrets))
	for i, s := range secrets {
		macs[i] = newMAC(s, id, ts.Unix())
		ws[i] = macs[i]
	}
	n, err := io.Copy(io.MultiWriter(ws...), r)
	if err != nil {
		return "", n, err
	}
	sigs := make([]string, len(macs))
	for i, m := range macs {
		sigs[i] = "v1," + base64.StdEncoding.EncodeToString(m.Sum(nil))
	}
	return strings.Join(sigs, " "), n, nil
}

// signatures returns the webhook-signature value for secrets: one v1
// signature per secret, space-separated, so receivers holding either the old
// or the new key accept requests during a rotation.
func signatures(secrets [][]byte, id string, ts time.Time, body []byte) string {
	sigs := make([]string, len(secrets))
	for i, s := range secrets {
		sigs[i] = Sign(s, id, ts, body)
	}
	return strings.Join(sigs, " ")
}

// Verify checks a received request against secrets, as a receiver does: the
// timestamp must be within tolerance of now (DefaultTolerance when tolerance
// is not positive) and any one of the space-separated v1 signatures must
// match any one secret, over the body preceded by the HeaderEnvelope value
// and "." when the request has one. Comparisons are constant-time. Signatures of other
// versions are skipped, as the spec asks.
func Verify(secrets [][]byte, header http.Header, body []byte, tolerance time.Duration, now time.Time) error {
	id := header.Get(HeaderID)
	tsText := header.Get(HeaderTimestamp)
	sigText := header.Get(HeaderSignature)
	switch {
	case id == "":
		return fmt.Errorf("%w: %s", ErrMissingHeader, HeaderID)
	case tsText == "":
		return fmt.Errorf("%w: %s", ErrMissingHeader, HeaderTimestamp)
	case sigText == "":
		return fmt.Errorf("%w: %s", ErrMissingHeader, HeaderSignature)
	}
	unix, err := strconv.ParseInt(tsText, 10, 64)
	if err != nil {
		return fmt.Errorf("%w: not unix seconds", ErrTimestamp)
	}
	if tolerance <= 0 {
		tolerance = DefaultTolerance
	}
	// Compare bounds rather than a difference, which could overflow for a
	// hostile timestamp far from now.
	tol := int64(tolerance / time.Second)
	if n := now.Unix(); unix < n-tol || unix > n+tol {
		return ErrTimestamp
	}
	body = signedBody(header.Get(HeaderEnvelope), body)
	want := make([][]byte, len(secrets))
	for i, s := range secrets {
		want[i] = mac(s, id, unix, body)
	}
	seen := 0
	for _, sig := range strings.Fields(sigText) {
		version, enc, ok := strings.Cut(sig, ",")
		if !ok || version != "v1" {
			continue
		}
		if seen++; seen > maxSignatures {
			break
		}
		got, err := base64.StdEncoding.DecodeString(enc)
		if err != nil {
			continue
		}
		for _, w := range want {
			if hmac.Equal(got, w) {
				return nil
			}
		}
	}
	return ErrSignature
}

// signedBody is what is signed in the place of the body: the body itself,
// or, for a request carrying HeaderEnvelope, its value, ".", then the body.
// base64url has no ".", so the two parts cannot be shifted into each other,
// and a Standard Webhooks library verifies it given these bytes as payload.
func signedBody(envelope string, body []byte) []byte {
	if envelope == "" {
		return body
	}
	return append([]byte(envelope+"."), body...)
}

// ParseSecret turns a configured secret into key bytes. "whsec_<base64>" is
// the Standard Webhooks form (the key is the decoded bytes, so receivers
// using the reference libraries with the same string agree); anything else
// is taken as the key text itself.
func ParseSecret(s string) ([]byte, error) {
	if s == "" {
		return nil, errors.New("webhook secret is empty")
	}
	enc, ok := strings.CutPrefix(s, secretPrefix)
	if !ok {
		return []byte(s), nil
	}
	key, err := base64.StdEncoding.DecodeString(enc)
	if err != nil {
		// The value is a secret: name the form, never echo it.
		return nil, errors.New("webhook secret starts with whsec_ but the rest is not standard base64")
	}
	if len(key) == 0 {
		return nil, errors.New("webhook secret whsec_ has no key after the prefix")
	}
	return key, nil
}
