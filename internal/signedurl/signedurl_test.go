package signedurl_test

import (
	"bytes"
	"errors"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/postern/postern/internal/signedurl"
)

var testKey = bytes.Repeat([]byte{7}, signedurl.KeySize)

func signer(t *testing.T, key []byte) *signedurl.Signer {
	t.Helper()
	s, err := signedurl.New(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestCheck(t *testing.T) {
	t.Parallel()
	s := signer(t, testKey)
	now := time.Unix(1_800_000_000, 0)
	raw := signedurl.Object{ID: "01KBQ5G3C1Y0T0W8J0Z5J2X4AB", Kind: signedurl.KindRaw}
	att := signedurl.Object{ID: raw.ID, Kind: signedurl.KindAttachment, Part: 1}
	good := s.Query(att, now.Add(time.Hour))
	if err := s.Check(att, good, now); err != nil {
		t.Fatalf("a fresh link: %v", err)
	}
	with := func(k, v string) url.Values {
		q := url.Values{}
		for kk, vv := range good {
			q[kk] = append([]string(nil), vv...)
		}
		q.Set(k, v)
		return q
	}
	sig := good.Get(signedurl.ParamSig)
	flipped := []byte(sig)
	flipped[3] ^= 1
	exp, _ := strconv.ParseInt(good.Get(signedurl.ParamExpires), 10, 64)
	for name, c := range map[string]struct {
		o    signedurl.Object
		q    url.Values
		at   time.Time
		want error
	}{
		"another part":            {signedurl.Object{ID: att.ID, Kind: signedurl.KindAttachment, Part: 2}, good, now, signedurl.ErrSignature},
		"another kind":            {signedurl.Object{ID: att.ID, Kind: signedurl.KindRaw, Part: 1}, good, now, signedurl.ErrSignature},
		"another message":         {signedurl.Object{ID: "01KBQ5G3C1Y0T0W8J0Z5J2X4AC", Kind: signedurl.KindAttachment, Part: 1}, good, now, signedurl.ErrSignature},
		"raw for the attachment":  {raw, good, now, signedurl.ErrSignature},
		"flipped signature":       {att, with(signedurl.ParamSig, string(flipped)), now, signedurl.ErrSignature},
		"padded signature":        {att, with(signedurl.ParamSig, sig+"="), now, signedurl.ErrSignature},
		"short signature":         {att, with(signedurl.ParamSig, sig[:20]), now, signedurl.ErrSignature},
		"no signature":            {att, url.Values{signedurl.ParamExpires: good[signedurl.ParamExpires]}, now, signedurl.ErrSignature},
		"later expiry":            {att, with(signedurl.ParamExpires, strconv.FormatInt(exp+86400, 10)), now, signedurl.ErrSignature},
		"expiry not a number":     {att, with(signedurl.ParamExpires, "soon"), now, signedurl.ErrSignature},
		"negative expiry":         {att, with(signedurl.ParamExpires, "-1"), now, signedurl.ErrSignature},
		"at expiry":               {att, good, now.Add(time.Hour), signedurl.ErrExpired},
		"after expiry":            {att, good, now.Add(48 * time.Hour), signedurl.ErrExpired},
		"a second before expiry":  {att, good, now.Add(time.Hour - time.Second), nil},
		"another key's signature": {att, signer(t, bytes.Repeat([]byte{8}, signedurl.KeySize)).Query(att, now.Add(time.Hour)), now, signedurl.ErrSignature},
	} {
		if err := s.Check(c.o, c.q, c.at); !errors.Is(err, c.want) || (c.want == nil) != (err == nil) {
			t.Errorf("%s: %v, want %v", name, err, c.want)
		}
	}
	// An expired link with a bad signature is a bad signature: expiry is
	// told only to the holder of a real link.
	if err := s.Check(att, with(signedurl.ParamSig, string(flipped)), now.Add(48*time.Hour)); !errors.Is(err, signedurl.ErrSignature) {
		t.Errorf("expired and forged: %v", err)
	}
}

func TestSignatureIsStable(t *testing.T) {
	t.Parallel()
	// A fixed vector, so a change of the signed content (which would revoke
	// every link given out) is a deliberate one.
	s := signer(t, testKey)
	q := s.Query(signedurl.Object{ID: "01KBQ5G3C1Y0T0W8J0Z5J2X4AB", Kind: signedurl.KindRaw}, time.Unix(1_800_000_000, 0))
	if got, want := q.Encode(), "expires=1800000000&sig="+goldenSig; got != want {
		t.Errorf("query %s, want %s", got, want)
	}
}

// goldenSig was computed apart from this code (the key is 32 bytes of 0x07):
//
//	printf 'postern-link-v1\0raw\0%s\0000\0001800000000' 01KBQ5G3C1Y0T0W8J0Z5J2X4AB |
//	  openssl dgst -sha256 -mac HMAC -macopt hexkey:0707...07 -binary | basenc --base64url | tr -d =
const goldenSig = "h9HgLzDGwtrqt3W3lH5lZN1n41sdVCdT1JsgCw-fzwk"

func TestNewRefusesShortKeys(t *testing.T) {
	t.Parallel()
	if _, err := signedurl.New(make([]byte, signedurl.KeySize-1)); err == nil {
		t.Error("a 31-byte key was taken")
	}
}

func TestLoadKey(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "data")
	path := filepath.Join(dir, "link-key")
	k1, created, err := signedurl.LoadKey(path)
	if err != nil || !created || len(k1) != signedurl.KeySize {
		t.Fatalf("first load: %d bytes, created %v, %v", len(k1), created, err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v %v", fi.Mode(), err)
	}
	k2, created, err := signedurl.LoadKey(path)
	if err != nil || created || !bytes.Equal(k1, k2) {
		t.Fatalf("second load: created %v, same %v, %v", created, bytes.Equal(k1, k2), err)
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := signedurl.LoadKey(path); err == nil {
		t.Error("a key file others can read was taken")
	}
	if err := os.WriteFile(path, []byte("short\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	os.Chmod(path, 0o600)
	if _, _, err := signedurl.LoadKey(path); err == nil {
		t.Error("a key file without a key was taken")
	}
}

// Processes starting together on one data_dir end up with one key.
func TestLoadKeyConcurrent(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "link-key")
	keys := make([][]byte, 8)
	var wg sync.WaitGroup
	for i := range keys {
		wg.Go(func() {
			k, _, err := signedurl.LoadKey(path)
			if err != nil {
				t.Error(err)
			}
			keys[i] = k
		})
	}
	wg.Wait()
	for i := range keys {
		if !bytes.Equal(keys[i], keys[0]) {
			t.Fatalf("key %d differs", i)
		}
	}
}
