package authcheck

import (
	"bytes"
	"errors"
	"io"
	"os"
	"slices"
	"strings"
	"testing"
)

func TestDKIMPass(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	rsaK, edK := rsaKey(), newEd25519(t)
	e.publishKey(t, "example.com", "rsa", rsaK)
	e.publishKey(t, "example.com", "ed", edK)

	for _, tc := range []struct {
		selector, algorithm string
		msg                 []byte
	}{
		{"rsa", "rsa-sha256", sign(t, message("example.com", "Hello.\r\n"), "example.com", "rsa", rsaK)},
		{"ed", "ed25519-sha256", sign(t, message("example.com", "Hello.\r\n"), "example.com", "ed", edK)},
	} {
		res := e.check(t, input("a@example.com", tc.msg))
		want := DKIM{Result: Pass, Domain: "example.com", Selector: tc.selector, Algorithm: tc.algorithm}
		if len(res.DKIM) != 1 || res.DKIM[0] != want {
			t.Errorf("%s: DKIM = %+v, want [%+v]", tc.selector, res.DKIM, want)
		}
	}
}

func TestDKIMFailures(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	good, other := newEd25519(t), newEd25519(t)
	e.publishKey(t, "example.com", "good", good)
	e.publishKey(t, "example.com", "rotated", other) // not the key that signed
	e.dns.AddTXT("revoked._domainkey.example.com", "v=DKIM1; k=ed25519; p=")
	e.dns.Timeout("slow._domainkey.example.com")
	msg := message("example.com", "Pay 10 EUR.\r\n")

	tampered := bytes.Replace(sign(t, msg, "example.com", "good", good), []byte("10 EUR"), []byte("99 EUR"), 1)
	for _, tc := range []struct {
		name     string
		msg      []byte
		selector string
		want     Verdict
		reason   string
	}{
		{"tampered body", tampered, "good", Fail, "body hash"},
		{"wrong key", sign(t, msg, "example.com", "rotated", good), "rotated", Fail, "signature did not verify"},
		{"no key", sign(t, msg, "example.com", "missing", good), "missing", PermError, "no key"},
		{"revoked key", sign(t, msg, "example.com", "revoked", good), "revoked", PermError, "revoked"},
		{"key lookup timeout", sign(t, msg, "example.com", "slow", good), "slow", TempError, "timeout"},
	} {
		got := dkimBySelector(t, e.check(t, input("a@example.com", tc.msg)), tc.selector)
		if got.Result != tc.want || !strings.Contains(got.Reason, tc.reason) {
			t.Errorf("%s: DKIM = %+v, want %s saying %q", tc.name, got, tc.want, tc.reason)
		}
	}
}

func TestDKIMTwoSignatures(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	k1, k2 := newEd25519(t), rsaKey()
	e.publishKey(t, "example.com", "one", k1)
	e.publishKey(t, "lists.example.org", "two", k2)
	msg := sign(t, message("example.com", "Hello.\r\n"), "example.com", "one", k1)
	// A second signature, by a list, whose key in DNS is not the one used.
	msg = sign(t, msg, "lists.example.org", "two", newEd25519(t))

	res := e.check(t, input("a@example.com", msg))
	if len(res.DKIM) != 2 {
		t.Fatalf("DKIM = %+v, want two verdicts", res.DKIM)
	}
	// Header order: the list's signature was prepended last.
	if res.DKIM[0].Selector != "two" || res.DKIM[1].Selector != "one" {
		t.Errorf("verdicts out of header order: %+v", res.DKIM)
	}
	if d := dkimBySelector(t, res, "one"); d.Result != Pass || d.Domain != "example.com" {
		t.Errorf("good signature: %+v", d)
	}
	if d := dkimBySelector(t, res, "two"); d.Result != PermError && d.Result != Fail || d.Domain != "lists.example.org" {
		t.Errorf("bad signature: %+v", d)
	}
	if res.DMARC.AlignedDKIM != true {
		t.Errorf("the good signature aligns with From: %+v", res.DMARC)
	}
}

func TestDKIMBodyLengthTag(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	k := newEd25519(t)
	e.publishKey(t, "example.com", "s", k)
	body := "Signed part.\r\n"
	signed := sign(t, message("example.com", body), "example.com", "s", k)
	// go-msgauth cannot sign with l=; add the tag as a signer that uses it
	// would, then append to the body as an attacker would.
	withL := bytes.Replace(signed, []byte("v=1;"), []byte("v=1; l=14;"), 1)
	if bytes.Equal(withL, signed) {
		t.Fatal("could not add l= to the signature")
	}
	withL = append(withL, "Appended by someone else.\r\n"...)

	got := e.check(t, input("a@example.com", withL)).DKIM
	if len(got) != 1 || got[0].Result != Policy || !strings.Contains(got[0].Reason, "body length") {
		t.Errorf("DKIM = %+v, want policy: body length tag refused", got)
	}
}

func TestDKIMNone(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	got := e.check(t, input("a@example.com", message("example.com", "hi\r\n"))).DKIM
	if len(got) != 1 || got[0].Result != None || got[0].Domain != "" {
		t.Errorf("unsigned: DKIM = %+v, want one none", got)
	}
}

func TestDKIMTooManySignatures(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	k := newEd25519(t)
	e.publishKey(t, "example.com", "s", k)
	msg := message("example.com", "hi\r\n")
	for range maxSignatures + 2 {
		msg = sign(t, msg, "example.com", "s", k)
	}
	got := e.check(t, input("a@example.com", msg)).DKIM
	if len(got) != maxSignatures+2 {
		t.Fatalf("%d verdicts, want %d", len(got), maxSignatures+2)
	}
	for i, d := range got {
		// go-msgauth verifies the first ones in header order; the two
		// beyond the limit are the oldest signatures.
		want := Pass
		if i >= maxSignatures {
			want = Policy
		}
		if d.Result != want {
			t.Errorf("signature %d: %+v, want %s", i, d, want)
		}
	}
}

// failingReader gives data, then an error.
type failingReader struct {
	data []byte
}

func (f *failingReader) Read(p []byte) (int, error) {
	if len(f.data) == 0 {
		return 0, errors.New("store: connection reset")
	}
	n := copy(p, f.data)
	f.data = f.data[n:]
	return n, nil
}

func TestDKIMReadError(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	k := newEd25519(t)
	e.publishKey(t, "example.com", "s", k)
	msg := sign(t, sign(t, message("example.com", strings.Repeat("line\r\n", 1000)), "example.com", "s", k), "example.com", "s", k)
	cut := bytes.Index(msg, []byte("\r\n\r\n")) + 100

	in := input("a@example.com", nil)
	in.Message = &failingReader{data: msg[:cut]}
	res := e.check(t, in)
	if len(res.DKIM) != 2 {
		t.Fatalf("DKIM = %+v", res.DKIM)
	}
	for _, d := range res.DKIM {
		if d.Result != TempError || !strings.Contains(d.Reason, "unreadable") {
			t.Errorf("DKIM = %+v, want temperror: message unreadable", d)
		}
	}
	// The header was read whole, so DMARC still finds the From domain.
	if res.DMARC.Domain != "example.com" {
		t.Errorf("DMARC = %+v", res.DMARC)
	}
}

func TestHeaderReadError(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	in := input("a@example.com", nil)
	in.Message = io.MultiReader(strings.NewReader("From: a@example.com\r\n"), &failingReader{})
	res := e.check(t, in)
	if res.DKIM[0].Result != TempError || res.DMARC.Result != TempError {
		t.Errorf("unreadable header: DKIM %+v DMARC %+v", res.DKIM, res.DMARC)
	}

	in.Message = strings.NewReader("From: a@example.com\r\nX-Big: " + strings.Repeat("x", maxHeader) + "\r\n\r\nbody\r\n")
	res = e.check(t, in)
	if res.DKIM[0].Result != PermError || res.DMARC.Result != PermError || !strings.Contains(res.DMARC.Reason, "larger than") {
		t.Errorf("header too large: DKIM %+v DMARC %+v", res.DKIM, res.DMARC)
	}
}

// TestDKIMIndependentSigner verifies the example of RFC 8463 appendix A,
// signed by another implementation with Ed25519 and RSA, keys as the RFC
// publishes them.
func TestDKIMIndependentSigner(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.dns.AddTXT("brisbane._domainkey.football.example.com", "v=DKIM1; k=ed25519; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=")
	e.dns.AddTXT("test._domainkey.football.example.com", "v=DKIM1; k=rsa; "+
		"p=MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQDkHlOQoBTzWRiGs5V6NpP3idY6Wk08a5qhdR6wy5bdOKb2jLQiY/J16JYi0Qvx/byYzCNb3W91y3FutACDfzwQ/BC/e/8uBsCR+yz1Lxj+PL6lHvqMKrM3rG4hstT5QjvHO9PzoxZyVYLzBfO2EeC3Ip3G+2kryOTIKT+l/K4w3QIDAQAB")
	msg, err := os.ReadFile("testdata/rfc8463.eml")
	if err != nil {
		t.Fatal(err)
	}
	res := e.check(t, input("joe@football.example.com", msg))
	want := []DKIM{
		{Result: Pass, Domain: "football.example.com", Selector: "brisbane", Algorithm: "ed25519-sha256"},
		{Result: Pass, Domain: "football.example.com", Selector: "test", Algorithm: "rsa-sha256"},
	}
	if !slices.Equal(res.DKIM, want) {
		t.Errorf("DKIM = %+v\nwant %+v", res.DKIM, want)
	}
	if !res.DMARC.AlignedDKIM || res.DMARC.Domain != "football.example.com" {
		t.Errorf("DMARC = %+v", res.DMARC)
	}
}
