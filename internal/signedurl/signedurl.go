// Package signedurl signs and checks expiring links to a stored message or
// attachment, so whoever holds a link may fetch that one object until it expires.
package signedurl

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"time"
)

// Object kinds a link can name.
const (
	KindRaw        = "raw"        // the message as received
	KindAttachment = "attachment" // a stored attachment, by its index
)

// Object is what a link grants: one stored object of one message. Part is
// the attachment's index (0 for the raw message).
type Object struct {
	ID   string // the message id (a ULID)
	Kind string // KindRaw or KindAttachment
	Part int
}

// Query parameter names of a signed link.
const (
	ParamExpires = "expires" // Unix seconds
	ParamSig     = "sig"     // unpadded base64url HMAC-SHA256
)

// KeySize is the length of a signing key in bytes.
const KeySize = 32

// Errors Check returns. ErrExpired is only returned for a link whose
// signature is good, so it tells nothing to someone guessing links.
var (
	ErrSignature = errors.New("signedurl: bad signature")
	ErrExpired   = errors.New("signedurl: link expired")
)

// Signer makes and checks the signatures of links with one key.
type Signer struct{ key []byte }

// New returns a Signer with key, which must be at least KeySize bytes.
func New(key []byte) (*Signer, error) {
	if len(key) < KeySize {
		return nil, fmt.Errorf("signedurl: key of %d bytes, want at least %d", len(key), KeySize)
	}
	return &Signer{key: append([]byte(nil), key...)}, nil
}

// Query returns the expires and sig parameters that grant o until expires
// (to the second).
func (s *Signer) Query(o Object, expires time.Time) url.Values {
	unix := expires.Unix()
	return url.Values{
		ParamExpires: {strconv.FormatInt(unix, 10)},
		ParamSig:     {base64.RawURLEncoding.EncodeToString(s.mac(o, unix))},
	}
}

// Check reports whether q holds a signature of o by this key that has not
// expired at now: nil, ErrSignature (missing, malformed or wrong: one
// answer for all, compared in constant time) or ErrExpired.
func (s *Signer) Check(o Object, q url.Values, now time.Time) error {
	exp, sig := q.Get(ParamExpires), q.Get(ParamSig)
	unix, err := strconv.ParseInt(exp, 10, 64)
	if err != nil || unix <= 0 {
		return ErrSignature
	}
	got, err := base64.RawURLEncoding.DecodeString(sig)
	if err != nil || len(got) != sha256.Size {
		return ErrSignature
	}
	if !hmac.Equal(got, s.mac(o, unix)) {
		return ErrSignature
	}
	if now.Unix() >= unix {
		return ErrExpired
	}
	return nil
}

// mac signs what the link grants and until when, never the method, host or
// path: a link moved to another host name or fetched with HEAD is the same
// grant. Fields are NUL-separated and none can hold a NUL (an id is a ULID,
// the rest are fixed words and numbers), so no two grants sign alike; the
// version prefix keeps these MACs apart from any other use of a key.
func (s *Signer) mac(o Object, unix int64) []byte {
	m := hmac.New(sha256.New, s.key)
	m.Write([]byte("postern-link-v1\x00" + o.Kind + "\x00" + o.ID + "\x00" + strconv.Itoa(o.Part) + "\x00" + strconv.FormatInt(unix, 10)))
	return m.Sum(nil)
}
