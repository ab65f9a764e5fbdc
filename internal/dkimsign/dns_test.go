package dkimsign

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-msgauth/dkim"
	"github.com/miekg/dns"

	"github.com/postern/postern/internal/dnstest"
)

// The TXT line TXTRecord prints is valid zone-file syntax (miekg/dns reads
// it), and published on a real DNS server on loopback, a 4096-bit RSA key
// in three strings and an Ed25519 key in one, go-msgauth fetches it over
// the wire (TCP when UDP truncates) and verifies the signatures with it.
func TestVerifyOverDNS(t *testing.T) {
	t.Parallel()
	big, err := GenerateKey(RSA, 4096)
	if err != nil {
		t.Fatal(err)
	}
	srv := dnstest.New(t)
	sels := []Selector{{"example.com", "big", big}, {"example.com", "ed", edKey()}}
	for _, sel := range sels {
		rr, err := dns.NewRR(TXTRecord(sel.Domain, sel.Selector, sel.Key))
		if err != nil {
			t.Fatalf("zone file syntax: %v", err)
		}
		txt := rr.(*dns.TXT)
		if want := (len(sel.Key.PublicRecord()) + 254) / 255; len(txt.Txt) != want {
			t.Errorf("%s: %d strings, want %d", sel.Key, len(txt.Txt), want)
		}
		srv.AddTXT(txt.Hdr.Name, strings.Join(txt.Txt, ""))
	}
	res := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, network, srv.Addr())
	}}
	lookup := func(name string) ([]string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return res.LookupTXT(ctx, name)
	}
	out, _ := sign(t, newSigner(t, Options{}, sels...), lfMessage)
	vs, err := dkim.VerifyWithOptions(strings.NewReader(string(out)), &dkim.VerifyOptions{LookupTXT: lookup})
	if err != nil || len(vs) != 2 {
		t.Fatalf("verify: %d, %v", len(vs), err)
	}
	for _, v := range vs {
		if v.Err != nil || v.Domain != "example.com" {
			t.Errorf("d=%s: %v", v.Domain, v.Err)
		}
	}
}
