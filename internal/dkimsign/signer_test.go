package dkimsign

import (
	"bytes"
	"errors"
	"io"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/iotest"
	"time"

	"github.com/postern/postern/internal/crlf"
	"github.com/postern/postern/internal/dkimsign/dkimsigntest"
)

// Keys are made once per test binary: RSA generation takes a while.
var (
	rsaKey = sync.OnceValue(func() *Key { return mustGenerate(RSA, 2048) })
	edKey  = sync.OnceValue(func() *Key { return mustGenerate(Ed25519, 0) })
)

func mustGenerate(alg string, bits int) *Key {
	k, err := GenerateKey(alg, bits)
	if err != nil {
		panic(err)
	}
	return k
}

// records publishes sels' public keys as a test's DNS would.
func records(sels ...Selector) dkimsigntest.Records {
	r := dkimsigntest.Records{}
	for _, s := range sels {
		r[strings.ToLower(s.Selector+"._domainkey."+strings.TrimSuffix(s.Domain, "."))] = s.Key.PublicRecord()
	}
	return r
}

func newSigner(t testing.TB, o Options, sels ...Selector) *Signer {
	t.Helper()
	s, err := NewSigner(sels, o)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// sign returns the signed message's bytes and its Signed.
func sign(t testing.TB, s *Signer, raw string) ([]byte, *Signed) {
	t.Helper()
	m, err := s.Sign(strings.NewReader(raw))
	if err != nil {
		t.Fatalf("Sign: %v", err)
	}
	b, err := io.ReadAll(m)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if m.Domain != "" && m.Size != int64(len(b)) {
		t.Errorf("Size %d, read %d bytes", m.Size, len(b))
	}
	return b, m
}

// checkPass fails t unless every signature in msg passes both verifiers
// with d=domain, n of them.
func checkPass(t *testing.T, msg []byte, recs dkimsigntest.Records, domain string, n int) {
	t.Helper()
	vs := dkimsigntest.VerifyGo(t, msg, recs)
	if len(vs) != n {
		t.Fatalf("go-msgauth found %d signatures, want %d", len(vs), n)
	}
	for i, v := range vs {
		if v.Err != nil || v.Domain != domain {
			t.Errorf("go-msgauth signature %d: d=%s err=%v", i, v.Domain, v.Err)
		}
	}
	rs := dkimsigntest.VerifyDkimpy(t, msg, recs)
	if len(rs) != n {
		t.Fatalf("dkimpy found %d signatures, want %d", len(rs), n)
	}
	for i, r := range rs {
		if !r.Pass || r.Domain != domain {
			t.Errorf("dkimpy signature %d: %+v", i, r)
		}
	}
}

// splitSig cuts the DKIM-Signature fields Sign put in front from the rest.
func splitSig(t *testing.T, msg []byte, n int) (fields, rest []byte) {
	t.Helper()
	pos := 0
	for range n {
		if !bytes.HasPrefix(msg[pos:], []byte("DKIM-Signature:")) {
			t.Fatalf("no DKIM-Signature at %d: %q", pos, msg[pos:min(len(msg), pos+40)])
		}
		for {
			i := bytes.Index(msg[pos:], []byte("\r\n"))
			pos += i + 2
			if pos >= len(msg) || (msg[pos] != ' ' && msg[pos] != '\t') {
				break
			}
		}
	}
	return msg[:pos], msg[pos:]
}

const lfMessage = "Received: from scanner-3f ([192.0.2.7])\n\tby gw.example (Postern); Sat, 05 Dec 2026 05:00:00 +0000\n" +
	"From: Alerts <alerts@example.com>\nTo: ops@example.net\nSubject: disk   nearly\n full\nDate: Sat, 05 Dec 2026 05:00:00 +0000\n" +
	"Message-ID: <1@example.com>\nMIME-Version: 1.0\nContent-Type: text/plain; charset=utf-8\n\n" +
	"line 1  with  spaces \t\n.\n..dots\n\n\n"

func TestSignVerifies(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name string
		sels []Selector
	}{
		{"rsa-2048", []Selector{{"example.com", "rsa1", rsaKey()}}},
		{"ed25519", []Selector{{"Example.COM.", "ed1", edKey()}}},
		{"both", []Selector{{"example.com", "rsa1", rsaKey()}, {"example.com", "ed1", edKey()}}},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			s := newSigner(t, Options{}, c.sels...)
			out, m := sign(t, s, lfMessage)
			if m.Domain != "example.com" || len(m.Selectors) != len(c.sels) || m.Unsigned != "" {
				t.Fatalf("Signed %+v", m)
			}
			// LF-only input is signed as it is sent: with CRLF line ends.
			fields, rest := splitSig(t, out, len(c.sels))
			if want := crlf.Append(nil, []byte(lfMessage)); !bytes.Equal(rest, want) {
				t.Fatalf("message after the signature:\n%q\nwant\n%q", rest, want)
			}
			if bytes.Count(out, []byte("\n")) != bytes.Count(out, []byte("\r\n")) {
				t.Fatal("output has a bare LF")
			}
			recs := records(c.sels...)

			vs := dkimsigntest.VerifyGo(t, out, recs)
			if h := strings.Join(vs[0].HeaderKeys, ":"); h != "From:To:Subject:Date:Message-ID:MIME-Version:Content-Type:From" {
				t.Errorf("h=%s: want the fields present and From over-signed", h)
			}
			f := strings.ReplaceAll(string(fields), "\r\n ", " ")
			for _, tag := range []string{"c=relaxed/relaxed;", "d=example.com;", " t="} {
				if !strings.Contains(f, tag) {
					t.Errorf("signature lacks %q: %s", tag, f)
				}
			}
			for _, tag := range []string{" l=", " x="} {
				if strings.Contains(f, tag) {
					t.Errorf("signature has %q: %s", tag, f)
				}
			}

			// The verifiers can fail: a changed body byte, and a From added
			// above ours (the over-signed From), each break every signature.
			// (go-msgauth first throughout: without dkimpy the test skips
			// at its first use.)
			tampered := map[string][]byte{
				"body changed": bytes.Replace(out, []byte("line 1"), []byte("line 2"), 1),
				"From added":   append(append(append([]byte{}, fields...), "From: ceo@example.com\r\n"...), rest...),
			}
			for what, bad := range tampered {
				for i, v := range dkimsigntest.VerifyGo(t, bad, recs) {
					if v.Err == nil {
						t.Errorf("%s: go-msgauth passes signature %d", what, i)
					}
				}
			}
			checkPass(t, out, recs, "example.com", len(c.sels))
			for what, bad := range tampered {
				for i, r := range dkimsigntest.VerifyDkimpy(t, bad, recs) {
					if r.Pass {
						t.Errorf("%s: dkimpy passes signature %d", what, i)
					}
				}
			}
		})
	}
}

// A hop that adds a missing Date or Message-ID, as smarthosts do, keeps
// the signature valid; one that adds a From does not.
func TestFieldsAddedDownstream(t *testing.T) {
	t.Parallel()
	sel := Selector{"example.com", "ed1", edKey()}
	recs := records(sel)
	out, _ := sign(t, newSigner(t, Options{}, sel), "From: a@example.com\nTo: b@example.net\nTo: c@example.net\nSubject: s\n\nbody\n")
	fields, rest := splitSig(t, out, 1)
	end := bytes.Index(rest, []byte("\r\n\r\n")) + 2
	insert := func(f string) []byte {
		return slices.Concat([]byte("Received: by smarthost\r\n"), fields, rest[:end], []byte(f), rest[end:])
	}
	if vs := dkimsigntest.VerifyGo(t, out, recs); strings.Join(vs[0].HeaderKeys, ":") != "From:To:To:Subject:From" {
		t.Errorf("h=%s", strings.Join(vs[0].HeaderKeys, ":"))
	}
	for _, v := range dkimsigntest.VerifyGo(t, insert("From: ceo@example.com\r\n"), recs) {
		if v.Err == nil {
			t.Error("a From added below passes")
		}
	}
	for _, v := range dkimsigntest.VerifyGo(t, insert("To: x@evil.test\r\n"), recs) {
		if v.Err == nil {
			t.Error("a To added below passes")
		}
	}
	checkPass(t, insert("Date: Sat, 05 Dec 2026 05:00:00 +0000\r\nMessage-ID: <x@smarthost>\r\n"), recs, "example.com", 1)
}

func TestSignExpiry(t *testing.T) {
	t.Parallel()
	sel := Selector{"example.com", "ed1", edKey()}
	out, _ := sign(t, newSigner(t, Options{Expiry: time.Hour}, sel), lfMessage)
	vs := dkimsigntest.VerifyGo(t, out, records(sel))
	if len(vs) != 1 || vs[0].Err != nil {
		t.Fatalf("verifications %+v", vs)
	}
	if d := vs[0].Expiration.Sub(vs[0].Time); d != time.Hour {
		t.Errorf("x= - t= is %v, want 1h", d)
	}
}

// Odd line ends and sizes still give a signature both verifiers accept,
// on exactly the bytes crlf sends.
func TestSignAwkwardMessages(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("word ", 20000) // one 100 kB header line
	folded := strings.Repeat("x\n ", 5000)
	cases := map[string]string{
		"bare LF in body":   "From: a@example.com\r\nSubject: s\r\n\r\nline\nbare\r\nend\r\n",
		"bare CR":           "From: a@example.com\rSubject: s\n\nbody\rmore\r\n",
		"CRLF already":      "From: a@example.com\r\nSubject: s\r\n\r\nbody\r\n",
		"very long header":  "From: a@example.com\nSubject: " + long + "\n\nbody\n",
		"many folds":        "From: a@example.com\nReferences: " + folded + "\n\nbody\n",
		"no body":           "From: a@example.com\nSubject: s\n",
		"no line end":       "From: a@example.com",
		"empty body":        "From: a@example.com\n\n",
		"trailing blanks":   "From: a@example.com\n\nbody\n\n\n\n",
		"no final line end": "From: a@example.com\n\nbody",
		"8bit header":       "From: =?utf-8?q?J=C3=BCrgen?= <j@example.com>\nSubject: Grüße\n\nbody\n",
		"unknown charset":   "From: =?x-nonsense?q?abc?= <j@example.com>\n\nbody\n",
		"line of dots":      "From: a@example.com\n\n.\n..\n.\r\n",
	}
	sel := Selector{"example.com", "ed1", edKey()}
	s := newSigner(t, Options{}, sel)
	recs := records(sel)
	for name, raw := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			out, m := sign(t, s, raw)
			if m.Domain != "example.com" {
				t.Fatalf("not signed: %s", m.Unsigned)
			}
			_, rest := splitSig(t, out, 1)
			want := crlf.Append(nil, []byte(raw))
			if !bytes.HasPrefix(rest, want) || !(len(rest) == len(want) || bytes.Count(rest[len(want):], []byte("\r\n"))*2 == len(rest)-len(want)) {
				t.Fatalf("sent %q, want %q (plus line ends that end the header)", rest, want)
			}
			checkPass(t, out, recs, "example.com", 1)
		})
	}
}

func TestSigningDomain(t *testing.T) {
	t.Parallel()
	s := newSigner(t, Options{},
		Selector{"example.com", "s1", edKey()},
		Selector{"mail.example.com", "s2", edKey()},
		Selector{"xn--bcher-kva.example", "s3", edKey()},
	)
	for from, want := range map[string]string{
		"From: a@example.com":                                "example.com",
		"From: a@MAIL.Example.com":                           "mail.example.com",
		"From: a@eu.mail.example.com":                        "mail.example.com", // nearest parent: aligned under relaxed DMARC
		"From: a@other.example.com":                          "example.com",
		"From: a@bücher.example":                             "xn--bcher-kva.example",
		"From: a@example.com, b@x.example.com":               ManyDomains,
		"From: a@example.com, B@EXAMPLE.com":                 "example.com",
		"From: a@example.org":                                NoKey,
		"From: a@notexample.com":                             NoKey,
		"From: a@example.com\nFrom: b@example.com":           ManyFrom,
		"Sender: a@example.com":                              NoFrom,
		"From: undisclosed":                                  BadFrom,
		"From: a@":                                           BadFrom,
		"From: Alerts <a@example.com> (the NOC)":             "example.com",
		"Received: x\nFrom: \"x@evil.test\" <a@example.com>": "example.com",
	} {
		_, m := sign(t, s, from+"\nSubject: s\n\nbody\n")
		got := m.Domain
		if got == "" {
			got = m.Unsigned
		}
		if got != want {
			t.Errorf("%q: %q, want %q", from, got, want)
		}
	}
}

// An unsigned message streams through unchanged but for line ends.
func TestUnsignedPassesThrough(t *testing.T) {
	t.Parallel()
	s := newSigner(t, Options{}, Selector{"example.com", "s1", edKey()})
	raw := "From: a@example.org\nSubject: s\n\nbody\n"
	out, m := sign(t, s, raw)
	if m.Domain != "" || m.Unsigned != NoKey || m.Size != -1 {
		t.Fatalf("Signed %+v", m)
	}
	if want := crlf.Append(nil, []byte(raw)); !bytes.Equal(out, want) {
		t.Fatalf("got %q, want %q", out, want)
	}
	big := "From: a@example.com\nX: " + strings.Repeat("y", MaxHeaderBytes) + "\n\nbody\n"
	out, m = sign(t, s, big)
	if m.Unsigned != HeaderTooLarge || !bytes.Equal(out, crlf.Append(nil, []byte(big))) {
		t.Fatalf("huge header: %q, %d bytes", m.Unsigned, len(out))
	}
}

// Past MemoryLimit the message waits in a file that no one else can read
// and that is gone (unlinked at once) however the signing ends.
func TestSpoolToFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	sel := Selector{"example.com", "rsa1", rsaKey()}
	s := newSigner(t, Options{MemoryLimit: 1000, SpoolDir: dir}, sel)
	raw := "From: a@example.com\nSubject: big\n\n" + strings.Repeat("0123456789abcdef\n", 10000)
	m, err := s.Sign(strings.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	if m.spool.f == nil {
		t.Fatal("message kept in memory past MemoryLimit")
	}
	if fi, err := m.spool.f.Stat(); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("spool file: %v %v", fi.Mode(), err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("spool file still has a name: %v", ents)
	}
	out, err := io.ReadAll(m)
	if err != nil {
		t.Fatal(err)
	}
	m.Close()
	if m.Size != int64(len(out)) {
		t.Errorf("Size %d, read %d", m.Size, len(out))
	}
	checkPass(t, out, records(sel), "example.com", 1)

	// A size known to pass the limit goes to the file from the start.
	s = newSigner(t, Options{SpoolDir: dir}, sel)
	m, err = s.sign(strings.NewReader(raw), DefaultMemoryLimit+1)
	if err != nil {
		t.Fatal(err)
	}
	if m.spool.f == nil || m.spool.mem.Cap() != 0 {
		t.Errorf("memory used for a message bound for the file: cap %d", m.spool.mem.Cap())
	}
	out2, _ := io.ReadAll(m)
	m.Close()
	checkPass(t, out2, records(sel), "example.com", 1)

	// An unwritable spool directory is an error (retried), not a silent
	// unsigned send.
	s = newSigner(t, Options{MemoryLimit: -1, SpoolDir: "/nonexistent/dkimsign"}, sel)
	if _, err := s.Sign(strings.NewReader(raw)); err == nil {
		t.Fatal("Sign succeeded without a spool")
	}
}

func TestSignReadError(t *testing.T) {
	t.Parallel()
	boom := errors.New("boom")
	s := newSigner(t, Options{}, Selector{"example.com", "s1", edKey()})
	for name, r := range map[string]io.Reader{
		"in header": io.MultiReader(strings.NewReader("From: a@example.com\n"), iotest.ErrReader(boom)),
		"in body":   io.MultiReader(strings.NewReader("From: a@example.com\n\nbody"), iotest.ErrReader(boom)),
	} {
		if _, err := s.Sign(r); !errors.Is(err, boom) {
			t.Errorf("%s: err %v, want the read error", name, err)
		}
	}
}

func TestNewSignerRefuses(t *testing.T) {
	t.Parallel()
	for name, sels := range map[string][]Selector{
		"no key":       {{"example.com", "s1", nil}},
		"bad selector": {{"example.com", "s 1", edKey()}},
		"empty sel":    {{"example.com", "", edKey()}},
		"not FQDN":     {{"localhost", "s1", edKey()}},
		"bad domain":   {{"exa mple.com", "s1", edKey()}},
		"twice":        {{"example.com", "s1", edKey()}, {"EXAMPLE.com", "S1", rsaKey()}},
	} {
		if _, err := NewSigner(sels, Options{}); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := NewSigner([]Selector{{"example.com", "2026-12.eu", edKey()}}, Options{}); err != nil {
		t.Errorf("dotted selector: %v", err)
	}
}

// dkimsignVerify verifies msg's one signature with go-msgauth against one
// record; it returns the verification error.
func dkimsignVerify(t *testing.T, msg []byte, name, record string) error {
	t.Helper()
	vs := dkimsigntest.VerifyGo(t, msg, dkimsigntest.Records{name: record})
	if len(vs) != 1 {
		t.Fatalf("%d signatures", len(vs))
	}
	return vs[0].Err
}
