package smtpd

import (
	"context"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"
)

// Connections handed to go-smtp while it shuts down: go-smtp counts each
// after Accept returns it, and its Shutdown waits on that count once the
// listener's Close returns, so Close must not return while a handover is
// under way (the race detector flags the count's use otherwise).
func TestShutdownDuringHandovers(t *testing.T) {
	t.Parallel()
	for range 20 {
		srv := New(testConfig(), loopback(), routerFunc(func(string, string, string) bool { return true }),
			&fakeIngest{}, slog.New(slog.DiscardHandler))
		addr := serve(t, srv)
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() {
				for {
					select {
					case <-stop:
						return
					default:
					}
					if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
						c.Close()
					}
				}
			})
		}
		time.Sleep(5 * time.Millisecond)
		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
		if err := srv.WaitDrained(ctx); err != nil {
			t.Errorf("WaitDrained: %v", err)
		}
		cancel()
		close(stop)
		wg.Wait()
		srv.Close()
	}
}
