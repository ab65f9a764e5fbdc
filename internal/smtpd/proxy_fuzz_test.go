package smtpd

import (
	"bufio"
	"bytes"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/pires/go-proxyproto"
)

// FuzzProxyHeader: whatever bytes a trusted balancer opens with, the
// gateway does not crash, ends the connection once the balancer has gone
// (never waiting past the header timeout), and its session never sees a
// client address that a valid PROXY header did not name. A connection
// without a valid header is closed unanswered; with one, the session's
// address is the header's source (the balancer's own for LOCAL and
// UNKNOWN), which is also where the protocol puts it in the bytes.
func FuzzProxyHeader(f *testing.F) {
	tcp4 := &net.TCPAddr{IP: net.IPv4(192, 0, 2, 10), Port: 40000}
	tcp6 := &net.TCPAddr{IP: net.ParseIP("2001:db8::10"), Port: 40000}
	dst4 := &net.TCPAddr{IP: net.IPv4(203, 0, 113, 5), Port: 25}
	dst6 := &net.TCPAddr{IP: net.ParseIP("2001:db8::25"), Port: 25}
	for _, h := range []*proxyproto.Header{
		proxyproto.HeaderProxyFromAddrs(1, tcp4, dst4),
		proxyproto.HeaderProxyFromAddrs(1, tcp6, dst6),
		proxyproto.HeaderProxyFromAddrs(2, tcp4, dst4),
		proxyproto.HeaderProxyFromAddrs(2, tcp6, dst6),
		proxyproto.HeaderProxyFromAddrs(2, &net.UDPAddr{IP: tcp4.IP, Port: 53}, &net.UDPAddr{IP: dst4.IP, Port: 53}),
		proxyproto.HeaderProxyFromAddrs(2, &net.UnixAddr{Net: "unix", Name: "/run/a"}, &net.UnixAddr{Net: "unix", Name: "/run/b"}),
		{Version: 2, Command: proxyproto.LOCAL, TransportProtocol: proxyproto.UNSPEC},
	} {
		b, err := h.Format()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
		f.Add(b[:len(b)-1]) // cut short
	}
	withTLV := proxyproto.HeaderProxyFromAddrs(2, tcp4, dst4)
	if err := withTLV.SetTLVs([]proxyproto.TLV{{Type: proxyproto.PP2_TYPE_AUTHORITY, Value: []byte("gw.example")}}); err != nil {
		f.Fatal(err)
	}
	if b, err := withTLV.Format(); err == nil {
		f.Add(b)
	}
	f.Add([]byte("PROXY UNKNOWN\r\n"))
	f.Add([]byte("PROXY TCP4 192.0.2.10 203.0.113.5 40000 25\r\n"))
	f.Add([]byte("PROXY TCP4 ::ffff:192.0.2.10 203.0.113.5 40000 25\r\n"))
	f.Add([]byte("PROXY TCP6 ::ffff:192.0.2.10 2001:db8::25 40000 25\r\n"))
	f.Add([]byte("PROXY TCP4 192.0.2.10 203.0.113.5 40000\r\n"))
	f.Add([]byte("PROXY TCP4 192.0.2.10 203.0.113.5 40000 25\n"))
	f.Add([]byte("EHLO x\r\n"))
	f.Add([]byte{})
	f.Add([]byte("\r\n\r\n\x00\r\nQUIT\n"))

	f.Fuzz(func(t *testing.T, header []byte) {
		cfg := testConfig()
		cfg.ProxyTrusted = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
		anyone := []Identity{{Name: "anyone", AllowPlaintext: true,
			Networks: []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0"), netip.MustParsePrefix("::/0")}}}
		ing := &fakeIngest{}
		fs := startFuzzServer(t, cfg, anyone, ing)
		input := append(bytes.Clone(header), "EHLO x\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\nx\r\n.\r\n"...)
		began := time.Now()
		replies := converse(t, fs.addr, input)
		if d := time.Since(began); d >= proxyHeaderTimeout {
			t.Fatalf("the connection lasted %s after the balancer had sent everything and closed", d)
		}
		logs := fs.stop(t)
		checkServerHealthy(t, replies, logs)

		want, valid := proxyClient(append(input, "\r\nQUIT\r\n"...))
		if !valid {
			if replies != "" || len(ing.Envs()) > 0 {
				t.Fatalf("served without a valid PROXY header: stored %d; replies:\n%s", len(ing.Envs()), replies)
			}
			return
		}
		if !strings.HasPrefix(replies, "220 ") {
			t.Fatalf("a valid PROXY header was not served: %q", replies)
		}
		for _, env := range ing.Envs() {
			got, err := netip.ParseAddr(env.ClientIP)
			if err != nil || !want.IsValid() || got != want {
				t.Fatalf("stored with client address %q; the header names %v", env.ClientIP, want)
			}
		}
	})
}

// proxyClient says what the gateway must take as the client's address for
// a connection from 127.0.0.1 that sends stream: whether it opens with a
// valid PROXY header, and the address that header names (127.0.0.1 for
// LOCAL and UNKNOWN; none for addresses that are not IP). go-proxyproto
// decides validity; where the address sits in the bytes is checked here
// against the protocol's own description, apart from the library.
func proxyClient(stream []byte) (netip.Addr, bool) {
	// The gateway reads through go-proxyproto's Conn, whose buffer is 256
	// bytes; the result must not depend on it, but read as it does.
	h, err := proxyproto.Read(bufio.NewReaderSize(bytes.NewReader(stream), 256))
	if err != nil || h == nil {
		return netip.Addr{}, false
	}
	balancer := netip.MustParseAddr("127.0.0.1")
	if h.Command.IsLocal() || h.SourceAddr == nil {
		return balancer, true
	}
	var ip net.IP
	switch a := h.SourceAddr.(type) {
	case *net.TCPAddr:
		ip = a.IP
	case *net.UDPAddr:
		ip = a.IP
	default:
		return netip.Addr{}, true
	}
	addr, ok := netip.AddrFromSlice(ip)
	if !ok {
		return netip.Addr{}, true
	}
	addr = addr.Unmap()
	if !namedInHeader(stream, addr) {
		// The library named an address the header does not carry.
		return netip.Addr{}, true
	}
	return addr, true
}

// namedInHeader reports whether addr is the source address field of the
// PROXY header stream starts with (v1: the third word of the line; v2: the
// first 4 or 16 bytes after the 16-byte preamble).
func namedInHeader(stream []byte, addr netip.Addr) bool {
	if line, _, ok := bytes.Cut(stream, []byte("\r\n")); ok && bytes.HasPrefix(line, []byte("PROXY ")) {
		words := strings.Split(string(line), " ")
		if len(words) < 3 {
			return false
		}
		a, err := netip.ParseAddr(words[2])
		return err == nil && a.Unmap() == addr
	}
	if len(stream) < 16 {
		return false
	}
	var field []byte
	switch stream[13] >> 4 {
	case 1:
		field = stream[16:min(len(stream), 20)]
	case 2:
		field = stream[16:min(len(stream), 32)]
	}
	a, ok := netip.AddrFromSlice(field)
	return ok && a.Unmap() == addr
}
