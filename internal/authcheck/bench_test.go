package authcheck

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"strings"
	"testing"

	"github.com/postern/postern/internal/dnsresolve"
	"github.com/postern/postern/internal/dnstest"
)

// BenchmarkCheck checks a 1 MiB message with an RSA-2048 and an Ed25519
// signature, every answer cached after the first round: the cost per
// message of the parse stage once DNS is warm.
func BenchmarkCheck(b *testing.B) {
	srv := dnstest.New(b)
	r, err := dnsresolve.New(dnsresolve.Config{Servers: []string{srv.Addr()}})
	if err != nil {
		b.Fatal(err)
	}
	rk := rsaKey()
	ek := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{1}, ed25519.SeedSize))
	srv.AddTXT("rsa._domainkey.example.com", keyRecord(b, rk))
	srv.AddTXT("ed._domainkey.example.com", keyRecord(b, ek))
	srv.AddTXT("example.com", "v=spf1 ip4:192.0.2.0/24 -all")
	srv.AddTXT("_dmarc.example.com", "v=DMARC1; p=reject")

	body := strings.Repeat(strings.Repeat("x", 76)+"\r\n", 1<<20/78)
	msg := sign(b, sign(b, message("example.com", body), "example.com", "rsa", rk), "example.com", "ed", ek)
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	for b.Loop() {
		res := Check(context.Background(), r, input("a@example.com", msg))
		if res.DMARC.Result != Pass || res.DKIM[0].Result != Pass || res.DKIM[1].Result != Pass {
			b.Fatalf("%+v", res)
		}
	}
}
