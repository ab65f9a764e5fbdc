package smtpd

import (
	"bufio"
	"io"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"
)

func TestProxyProtocolFromTrustedBalancer(t *testing.T) {
	t.Parallel()
	ing := &fakeIngest{}
	ids := []Identity{{Name: "branch-office", Networks: []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}, AllowPlaintext: true}}
	addr, _ := startWith(t, ids, ing, func(c *Config) { c.ProxyTrusted = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")} })

	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	t.Cleanup(func() { c.Close() })
	io.WriteString(c, "PROXY TCP4 192.0.2.10 203.0.113.5 40000 25\r\n")
	d := &dialog{t: t, c: c, r: bufio.NewReader(c)}
	d.expect("220")
	d.must("EHLO x", "250")
	d.must("MAIL FROM:<a@branch>", "250")
	d.must("RCPT TO:<app@example.com>", "250")
	d.must("DATA", "354")
	d.must("x\r\n.", "250")
	if got := ing.envs[0].ClientIP; got != "192.0.2.10" {
		t.Fatalf("client IP %s, want the one from the PROXY header", got)
	}

	// A trusted balancer's connection without a header is refused: the
	// gateway must never mistake the balancer for the client.
	c2, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	c2.SetDeadline(time.Now().Add(15 * time.Second))
	io.WriteString(c2, "EHLO x\r\n")
	line, _ := bufio.NewReader(c2).ReadString('\n')
	if strings.HasPrefix(line, "220") || strings.HasPrefix(line, "250") {
		t.Fatalf("headerless connection from a trusted balancer was served: %q", line)
	}
}

func TestProxyHeaderFromUntrustedPeerIsRefused(t *testing.T) {
	t.Parallel()
	ing := &fakeIngest{}
	ids := append(loopback(), Identity{Name: "spoofed", Networks: []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}, AllowPlaintext: true})
	addr, _ := startWith(t, ids, ing, func(c *Config) { c.ProxyTrusted = []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")} })

	// Without a header, an untrusted peer is served as itself.
	d := dial(t, addr)
	d.must("EHLO x", "250")
	d.must("MAIL FROM:<a@lan>", "250")

	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(3 * time.Second))
	io.WriteString(c, "PROXY TCP4 192.0.2.10 203.0.113.5 40000 25\r\nEHLO x\r\nMAIL FROM:<a@b>\r\n")
	all, _ := io.ReadAll(c)
	if strings.Contains(string(all), "250 2.0.0 Roger") {
		t.Fatalf("spoofed PROXY header accepted:\n%s", all)
	}
}
