package authcheck

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-msgauth/dkim"

	"github.com/postern/postern/internal/dnsresolve"
	"github.com/postern/postern/internal/dnstest"
)

// rsaKey is made once: RSA-2048 key generation is slow under -race. It is
// never changed after.
var rsaKey = sync.OnceValue(func() *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	return k
})

// env is a DNS server and a resolver that asks only it.
type env struct {
	dns *dnstest.Server
	r   *dnsresolve.Resolver
}

func newEnv(t *testing.T) *env {
	t.Helper()
	srv := dnstest.New(t)
	r, err := dnsresolve.New(dnsresolve.Config{Servers: []string{srv.Addr()}, Timeout: 400 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	return &env{dns: srv, r: r}
}

func (e *env) check(t *testing.T, in Input) Result {
	t.Helper()
	res := Check(context.Background(), e.r, in)
	t.Logf("%s", res.AuthenticationResults("mx.test"))
	return res
}

// publishKey puts the public key of signer in DNS under selector._domainkey.domain.
func (e *env) publishKey(t *testing.T, domain, selector string, signer crypto.Signer) {
	t.Helper()
	e.dns.AddTXT(selector+"._domainkey."+domain, keyRecord(t, signer))
}

// keyRecord is the DKIM key record (RFC 6376 section 3.6.1) of signer.
func keyRecord(t testing.TB, signer crypto.Signer) string {
	t.Helper()
	var rec string
	switch pub := signer.Public().(type) {
	case *rsa.PublicKey:
		der, err := x509.MarshalPKIXPublicKey(pub)
		if err != nil {
			t.Fatal(err)
		}
		rec = "v=DKIM1; k=rsa; p=" + base64.StdEncoding.EncodeToString(der)
	case ed25519.PublicKey:
		rec = "v=DKIM1; k=ed25519; p=" + base64.StdEncoding.EncodeToString(pub)
	default:
		t.Fatalf("key type %T", pub)
	}
	return rec
}

func newEd25519(t *testing.T) ed25519.PrivateKey {
	t.Helper()
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// message builds a test message from alice@fromDomain.
func message(fromDomain, body string) []byte {
	return []byte("From: Alice <alice@" + fromDomain + ">\r\n" +
		"To: bob@example.net\r\n" +
		"Subject: test\r\n" +
		"Date: Sat, 05 Dec 2026 06:00:00 +0000\r\n" +
		"Message-ID: <1@" + fromDomain + ">\r\n" +
		"\r\n" + body)
}

// sign returns msg with a relaxed/relaxed DKIM signature of domain and
// selector prepended.
func sign(t testing.TB, msg []byte, domain, selector string, key crypto.Signer) []byte {
	t.Helper()
	var out bytes.Buffer
	err := dkim.Sign(&out, bytes.NewReader(msg), &dkim.SignOptions{
		Domain:                 domain,
		Selector:               selector,
		Signer:                 key,
		HeaderCanonicalization: dkim.CanonicalizationRelaxed,
		BodyCanonicalization:   dkim.CanonicalizationRelaxed,
	})
	if err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

func ip(s string) netip.Addr { return netip.MustParseAddr(s) }

func input(mailFrom string, msg []byte) Input {
	return Input{
		ClientIP: ip("192.0.2.1"),
		HELO:     "mx.sender.example",
		MailFrom: mailFrom,
		Message:  bytes.NewReader(msg),
	}
}

func dkimBySelector(t *testing.T, res Result, selector string) DKIM {
	t.Helper()
	for _, d := range res.DKIM {
		if d.Selector == selector {
			return d
		}
	}
	t.Fatalf("no DKIM verdict for selector %q in %+v", selector, res.DKIM)
	return DKIM{}
}

func hasPrefix(s, p string) bool { return strings.HasPrefix(s, p) }
