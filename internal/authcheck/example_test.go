package authcheck_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"time"

	"github.com/postern/postern/internal/authcheck"
	"github.com/postern/postern/internal/dnsresolve"
)

// The parse stage builds one resolver for the process and checks each
// message from an untrusted network after the 250, under a deadline.
func ExampleCheck() {
	resolver, err := dnsresolve.New(dnsresolve.Config{
		Servers: nil, // dns.servers; empty: /etc/resolv.conf
		Timeout: 3 * time.Second,
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	raw, err := os.Open("testdata/rfc8463.eml")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer raw.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	res := authcheck.Check(ctx, resolver, authcheck.Input{
		ClientIP: netip.MustParseAddr("192.0.2.1"),
		HELO:     "mail.football.example.com",
		MailFrom: "joe@football.example.com",
		Message:  raw,
		Trusted:  false, // true for an authenticated identity or its networks
	})

	// The copy that goes to webhooks and relays gets the header; the
	// payload gets the JSON.
	header := "Authentication-Results: " + res.AuthenticationResults("mx.example.net") + "\r\n"
	payload, _ := json.Marshal(map[string]any{"auth": res})
	_, _ = header, payload
}
