package authcheck

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"reflect"
	"strings"
	"testing"

	"github.com/emersion/go-msgauth/authres"
)

// unreadable fails the test that reads it.
type unreadable struct{ t *testing.T }

func (u unreadable) Read([]byte) (int, error) {
	u.t.Error("a trusted message was read")
	return 0, errors.New("unreadable")
}

func TestTrustedAsksNoDNS(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.dns.AddTXT("example.com", "v=spf1 -all")
	e.dns.AddTXT("_dmarc.example.com", "v=DMARC1; p=reject")
	in := input("a@example.com", nil)
	in.Message = unreadable{t}
	in.Trusted = true

	res := e.check(t, in)
	if n := e.dns.Count(); n != 0 {
		t.Errorf("trusted input asked DNS %d times: %v", n, e.dns.Queries())
	}
	want := Result{
		SPF:   SPF{Result: None, Domain: "example.com", Scope: ScopeMailFrom, Reason: ReasonTrusted},
		DKIM:  []DKIM{{Result: None, Reason: ReasonTrusted}},
		DMARC: DMARC{Result: None, Reason: ReasonTrusted},
	}
	if !reflect.DeepEqual(res, want) {
		t.Errorf("trusted: %+v\nwant %+v", res, want)
	}

	// The same input, untrusted, does ask: the count above can fail.
	in.Trusted = false
	in.Message = strings.NewReader(string(message("example.com", "hi\r\n")))
	if res := e.check(t, in); res.SPF.Result != Fail || res.DMARC.Result != Fail || e.dns.Count() == 0 {
		t.Errorf("untrusted: %+v after %d queries", res, e.dns.Count())
	}
}

func TestARCReported(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	msg := []byte("ARC-Seal: i=2; a=rsa-sha256; cv=pass; d=lists.example.org; s=arc;\r\n b=abc\r\n" +
		"ARC-Authentication-Results: i=2; lists.example.org;\r\n spf=fail smtp.mailfrom=example.com\r\n" +
		"ARC-Seal: i=1; a=rsa-sha256; cv=none; d=example.net; s=arc; b=def\r\n" +
		"ARC-Authentication-Results: i=1; mx.example.net; dkim=pass header.d=\"exa\\\"mple.com\"\r\n" +
		"ARC-Authentication-Results: garbage\r\n" +
		string(message("example.com", "hi\r\n")))
	got := e.check(t, input("a@example.com", msg)).ARC
	want := &ARC{Result: None, Reason: got.Reason, Sets: []ARCSet{
		{Instance: 1, AuthServID: "mx.example.net", Results: `dkim=pass header.d='exa''mple.com'`, ChainValidation: "none"},
		{Instance: 2, AuthServID: "lists.example.org", Results: "spf=fail smtp.mailfrom=example.com", ChainValidation: "pass"},
	}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("ARC = %+v\nwant %+v", got, want)
	}
	if !strings.Contains(got.Reason, "not verified") {
		t.Errorf("ARC reason %q must say it is not verified", got.Reason)
	}
	if res := e.check(t, input("a@example.com", message("example.com", "hi\r\n"))); res.ARC != nil {
		t.Errorf("no ARC fields, ARC = %+v", res.ARC)
	}
}

func TestAuthenticationResults(t *testing.T) {
	t.Parallel()
	res := Result{
		SPF: SPF{Result: Pass, Domain: "bounce.example.com", Scope: ScopeMailFrom, Reason: "matched ip"},
		DKIM: []DKIM{
			{Result: Pass, Domain: "example.com", Selector: "s1", Algorithm: "ed25519-sha256"},
			{Result: Fail, Domain: "lists.example.org", Selector: "s2", Algorithm: "rsa-sha256", Reason: "body hash did not verify"},
		},
		DMARC: DMARC{Result: Pass, Policy: "reject", Domain: "example.com", AlignedSPF: true, AlignedDKIM: true},
	}
	got := res.AuthenticationResults("mx.postern.example")
	want := "mx.postern.example;\r\n" +
		"\tspf=pass reason=\"matched ip\" smtp.mailfrom=bounce.example.com;\r\n" +
		"\tdkim=pass header.a=ed25519-sha256 header.d=example.com header.s=s1;\r\n" +
		"\tdkim=fail reason=\"body hash did not verify\" header.a=rsa-sha256 header.d=lists.example.org header.s=s2;\r\n" +
		"\tdmarc=pass header.from=example.com"
	if got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}

	id, parsed, err := authres.Parse(unfold(got))
	if err != nil || id != "mx.postern.example" || len(parsed) != 4 {
		t.Fatalf("authres.Parse = %q, %d results, %v", id, len(parsed), err)
	}
	if s, ok := parsed[0].(*authres.SPFResult); !ok || s.Value != authres.ResultPass || s.From != "bounce.example.com" {
		t.Errorf("SPF parsed back as %#v", parsed[0])
	}
	if d, ok := parsed[3].(*authres.DMARCResult); !ok || d.Value != authres.ResultPass || d.From != "example.com" {
		t.Errorf("DMARC parsed back as %#v", parsed[3])
	}

	helo := Result{SPF: SPF{Result: None, Domain: "mx.example", Scope: ScopeHELO}, DKIM: []DKIM{{Result: None}}, DMARC: DMARC{Result: None}}
	if got := helo.AuthenticationResults("h"); !strings.Contains(got, "spf=none smtp.helo=mx.example;") {
		t.Errorf("HELO scope: %q", got)
	}
	var zero Result
	if got, want := zero.AuthenticationResults("h"), "h;\r\n\tspf=none;\r\n\tdmarc=none"; got != want {
		t.Errorf("zero Result: %q, want %q", got, want)
	}
}

func TestAuthenticationResultsHostileText(t *testing.T) {
	t.Parallel()
	res := Result{
		SPF:   SPF{Result: PermError, Domain: "evil\r\nBcc: x@example.com", Scope: ScopeMailFrom, Reason: `a "quoted\" reason\` + "\x00\r\n"},
		DKIM:  []DKIM{{Result: Fail, Domain: "d;dkim=pass", Selector: "s\"", Algorithm: "a\\", Reason: strings.Repeat("long ", 100)}},
		DMARC: DMARC{Result: None, Domain: "x (comment"},
	}
	got := res.AuthenticationResults("mx\r\nX-Injected: 1")
	if strings.Count(got, "\r\n") != 3 || strings.Count(got, "\r\n\t") != 3 || strings.ContainsAny(unfold(got), "\r\n\x00\\") {
		t.Fatalf("control characters or bare line ends survived:\n%q", got)
	}
	id, parsed, err := authres.Parse(unfold(got))
	if err != nil || len(parsed) != 3 {
		t.Fatalf("authres.Parse(%q) = %q, %d, %v", got, id, len(parsed), err)
	}
	if g, ok := parsed[1].(*authres.DKIMResult); !ok || g.Value != authres.ResultFail {
		t.Errorf("the DKIM verdict did not survive: %#v", parsed[1])
	}
}

// unfold removes folding (RFC 5322 section 2.2.3).
func unfold(s string) string { return strings.ReplaceAll(s, "\r\n", "") }

func TestJSON(t *testing.T) {
	t.Parallel()
	res := Result{
		SPF:   SPF{Result: Pass, Domain: "example.com", Scope: ScopeMailFrom},
		DKIM:  []DKIM{{Result: Pass, Domain: "example.com", Selector: "s", Algorithm: "rsa-sha256"}},
		DMARC: DMARC{Result: Fail, Policy: "reject", Domain: "example.com", Reason: "no aligned SPF or DKIM pass"},
	}
	b, err := json.Marshal(res)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"spf":{"result":"pass","domain":"example.com","scope":"mailfrom"},` +
		`"dkim":[{"result":"pass","domain":"example.com","selector":"s","algorithm":"rsa-sha256"}],` +
		`"dmarc":{"result":"fail","policy":"reject","domain":"example.com","aligned_spf":false,"aligned_dkim":false,"reason":"no aligned SPF or DKIM pass"}}`
	if string(b) != want {
		t.Errorf("JSON\n%s\nwant\n%s", b, want)
	}
	var back Result
	if err := json.Unmarshal(b, &back); err != nil || !reflect.DeepEqual(back, res) {
		t.Errorf("round trip: %+v, %v", back, err)
	}
}

// nxResolver answers every question NXDOMAIN, asking nothing.
type nxResolver struct{}

func nx(name string) error { return &net.DNSError{Err: "no such host", Name: name, IsNotFound: true} }

func (nxResolver) LookupTXT(_ context.Context, n string) ([]string, error)        { return nil, nx(n) }
func (nxResolver) LookupMX(_ context.Context, n string) ([]*net.MX, error)        { return nil, nx(n) }
func (nxResolver) LookupIPAddr(_ context.Context, n string) ([]net.IPAddr, error) { return nil, nx(n) }
func (nxResolver) LookupAddr(_ context.Context, n string) ([]string, error)       { return nil, nx(n) }

var _ Resolver = (*net.Resolver)(nil)

func TestContextEnded(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	k := newEd25519(t)
	e.publishKey(t, "example.com", "s", k)
	e.dns.AddTXT("example.com", "v=spf1 ip4:192.0.2.0/24 -all")
	e.dns.AddTXT("_dmarc.example.com", "v=DMARC1; p=reject")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	res := Check(ctx, e.r, input("a@example.com", sign(t, message("example.com", "hi\r\n"), "example.com", "s", k)))
	if res.SPF.Result != TempError || res.DKIM[0].Result != TempError || res.DMARC.Result != TempError {
		t.Errorf("after the deadline: %+v", res)
	}
}
