package authcheck

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/emersion/go-msgauth/authres"
)

// FuzzCheck feeds Check messages, MAIL FROM and HELO as they come from the
// network, with a resolver that finds nothing. Whatever the bytes, Check must
// return verdicts from the RFC sets, never a pass or fail that DNS did not
// give, and a header that parses back and cannot break out of its field.
func FuzzCheck(f *testing.F) {
	key := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, ed25519.SeedSize))
	signed := sign(f, message("example.com", "Hello.\r\n"), "example.com", "s", key)
	f.Add(signed, "a@example.com", "mx.example.com")
	f.Add(sign(f, signed, "lists.example.org", "l", key), "", "mx.example.org")
	f.Add(bytes.Replace(signed, []byte("v=1;"), []byte("v=1; l=3;"), 1), "a@b@example.com", "[192.0.2.1]")
	f.Add([]byte("ARC-Seal: i=1; cv=none; d=x.example; b=\r\nARC-Authentication-Results: i=1; mx; spf=pass\r\nFrom: a@x.example\r\n\r\n"), "a@x.example", "x")
	f.Add([]byte("From: a@example.com, b@example.org\r\nDKIM-Signature: v=1; d=;\r\n\r\n"), "@", "")
	f.Add([]byte(" DKIM-Signature: v=1\r\nno colon\r\n\tcontinued\r\nFrom: =?utf-8?q?x?= <a@bücher.example>"), "a@bücher.example", "bücher.example")
	f.Add([]byte{}, "", "")

	f.Fuzz(func(t *testing.T, msg []byte, mailFrom, helo string) {
		in := Input{ClientIP: ip("2001:db8::1"), HELO: helo, MailFrom: mailFrom, Message: bytes.NewReader(msg)}
		res := Check(t.Context(), nxResolver{}, in)

		// Nothing is published, so nothing can pass or fail.
		if res.SPF.Result != None {
			t.Errorf("SPF %+v with no records", res.SPF)
		}
		if len(res.DKIM) == 0 {
			t.Fatal("no DKIM verdict")
		}
		for _, d := range res.DKIM {
			if !slices.Contains([]Verdict{None, Policy, PermError}, d.Result) {
				t.Errorf("DKIM %+v with no keys", d)
			}
		}
		if !slices.Contains([]Verdict{None, PermError}, res.DMARC.Result) {
			t.Errorf("DMARC %+v with no records", res.DMARC)
		}
		if res.ARC != nil && (res.ARC.Result != None || len(res.ARC.Sets) > maxARCSets) {
			t.Errorf("ARC %+v", res.ARC)
		}

		if _, err := json.Marshal(res); err != nil {
			t.Errorf("JSON: %v", err)
		}
		h := res.AuthenticationResults("mx.postern.example")
		if strings.Count(h, "\r\n") != strings.Count(h, "\r\n\t") {
			t.Fatalf("a line end that is not a fold: %q", h)
		}
		flat := unfold(h)
		if strings.ContainsAny(flat, "\r\n\x00") {
			t.Fatalf("control characters in %q", h)
		}
		id, parsed, err := authres.Parse(flat)
		if err != nil || id != "mx.postern.example" || len(parsed) != 2+len(res.DKIM) {
			t.Fatalf("authres.Parse(%q) = %q, %d results, %v", flat, id, len(parsed), err)
		}
	})
}
