package egress

import (
	"net/http"
	"time"
)

// NewTransport returns an HTTP transport that connects only where g allows.
// It never uses a proxy: through one, the proxy's address would be the only
// one checked.
func NewTransport(g Guard) *http.Transport {
	return &http.Transport{
		Proxy:                 nil,
		DialContext:           g.DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          100,
		MaxIdleConnsPerHost:   16, // stage workers often share one receiver
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
	}
}

// NewClient returns a client over NewTransport(g) that does not follow
// redirects: a 3xx comes back to the caller as the response. A redirect
// that were followed would still be dialled through g, but a webhook URL
// that moves should be fixed in the configuration, not silently re-aimed.
// The client sets no overall timeout; callers bound each request with its
// context.
func NewClient(g Guard) *http.Client {
	return &http.Client{
		Transport:     NewTransport(g),
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}
