package config

import (
	"strings"
	"testing"
	"time"
)

func TestPublicURLAndURLTTL(t *testing.T) {
	t.Parallel()
	c, err := Load(write(t, "hostname: a\n"), noenv)
	if err != nil {
		t.Fatal(err)
	}
	if c.Delivery.PublicURL != "" || c.Delivery.URLTTL.D() != 7*24*time.Hour {
		t.Errorf("defaults: public_url %q, url_ttl %s; want \"\" (from admin.addr) and 168h", c.Delivery.PublicURL, c.Delivery.URLTTL.D())
	}
	for _, ok := range []string{"https://postern.example.com", "http://10.0.0.5:8025", "https://files.example.com/postern/", "http://[fd00::5]:8025"} {
		c, err := Load(write(t, "hostname: a\ndelivery:\n  public_url: \""+ok+"\"\n  url_ttl: 24h\n"), noenv)
		if err != nil || c.Delivery.PublicURL != ok || c.Delivery.URLTTL.D() != 24*time.Hour {
			t.Errorf("public_url %s, url_ttl 24h: %v", ok, err)
		}
	}
	const aws = `
backend:
  type: aws
  aws:
    bucket: postern-test
    queues:
      inbound: https://sqs.us-east-1.amazonaws.com/123456789012/inbound
      webhook: https://sqs.us-east-1.amazonaws.com/123456789012/webhook
      relay: https://sqs.us-east-1.amazonaws.com/123456789012/relay
      dsn: https://sqs.us-east-1.amazonaws.com/123456789012/dsn
`
	for _, tc := range []struct{ yaml, want string }{
		{"delivery: {public_url: \"ftp://x.example\"}\n", `delivery.public_url: "ftp://x.example" is not an http or https URL; write the base applications reach the admin listener at`},
		{"delivery: {public_url: \"postern.example.com\"}\n", `delivery.public_url: "postern.example.com" is not an http or https URL`},
		{"delivery: {public_url: \"https://u:p@x.example\"}\n", "delivery.public_url: must be a base URL without user, query or fragment"},
		{"delivery: {public_url: \"https://x.example/?a=1\"}\n", "delivery.public_url: must be a base URL without user, query or fragment"},
		{"delivery: {public_url: \"https://x.example:99999\"}\n", `delivery.public_url: port "99999" is not a port number`},
		{"admin: {addr: \"\"}\ndelivery: {public_url: \"https://x.example\"}\n", `delivery.public_url: the links it names are served by the admin listener, which admin.addr "" turns off; set admin.addr or remove delivery.public_url`},
		{aws + "delivery: {public_url: \"https://x.example\"}\n", "delivery.public_url: is for backend.type local only: on aws the payload's links are pre-signed S3 URLs; remove it"},
		{"delivery: {url_ttl: 30s}\n", "delivery.url_ttl: 30s must be between 1m and 8760h (a year); the default is 168h (7 days)"},
		{"delivery: {url_ttl: 9000h}\n", "delivery.url_ttl: 9000h0m0s must be between 1m and 8760h"},
	} {
		_, err := Load(write(t, "hostname: a\n"+tc.yaml), noenv)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: %v, want an error containing %q", tc.yaml, err, tc.want)
		}
	}
}
