package loadgen

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Config is one load run: Sessions connections each sending messages of
// Size bytes back to back, until Duration has passed or Messages have been
// accepted, whichever comes first.
type Config struct {
	Addr     string
	Sessions int           // concurrent SMTP sessions; default 1
	Size     int           // bytes per message, header included
	Body     string        // what a message is made of: BodyText (the default) or BodyPDF
	Duration time.Duration // no new transaction starts after it; 0: Messages only
	Messages int           // stop after this many accepted; 0: Duration only
	From     string        // default loadgen@bench.test
	To       string        // default sink@bench.test
	Helo     string        // default loadgen.bench.test
	Timeout  time.Duration // per command; default DefaultTimeout
}

// Result is what a run measured.
type Result struct {
	Accepted  int // transactions answered 2xx at the end of DATA
	Refused   int // transactions ended by a 4xx or 5xx reply
	Errors    int // failed connects and transactions cut by a connection error or timeout
	Bytes     int64
	Elapsed   time.Duration   // first transaction start to last end
	Latencies []time.Duration // per accepted transaction, MAIL to final reply, sorted
	Codes     map[int]int     // final reply codes of refused transactions
	FirstErr  string          // the first connection error, if any
}

// Rate is accepted messages per second.
func (r *Result) Rate() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Accepted) / r.Elapsed.Seconds()
}

// MBps is accepted megabytes (10^6) per second.
func (r *Result) MBps() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Bytes) / 1e6 / r.Elapsed.Seconds()
}

// Percentile returns the p-th percentile (0 < p <= 100) of the accepted
// transactions' latencies by nearest rank, or 0 without any.
func (r *Result) Percentile(p float64) time.Duration {
	n := len(r.Latencies)
	if n == 0 {
		return 0
	}
	rank := int(p/100*float64(n)+0.999999) - 1
	return r.Latencies[min(max(rank, 0), n-1)]
}

// Run sends load as cfg says and returns what it measured. A session whose
// connection fails counts the cut transaction and reconnects, so a server
// that drops connections shows up in Errors rather than ending the run.
// Run returns an error only if no session could ever connect.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	if cfg.Sessions <= 0 {
		cfg.Sessions = 1
	}
	if cfg.Duration <= 0 && cfg.Messages <= 0 {
		return nil, errors.New("loadgen: set Duration or Messages")
	}
	if cfg.From == "" {
		cfg.From = "loadgen@bench.test"
	}
	if cfg.To == "" {
		cfg.To = "sink@bench.test"
	}
	if cfg.Helo == "" {
		cfg.Helo = "loadgen.bench.test"
	}
	tpl, err := NewTemplateOf(cfg.Body, cfg.Size)
	if err != nil {
		return nil, err
	}
	start := time.Now()
	var deadline time.Time
	if cfg.Duration > 0 {
		deadline = start.Add(cfg.Duration)
	}
	var (
		budget    atomic.Int64 // transactions still to start when Messages > 0
		connected atomic.Bool
		mu        sync.Mutex
		total     = &Result{Codes: map[int]int{}}
		end       time.Time
		wg        sync.WaitGroup
	)
	budget.Store(int64(cfg.Messages))
	more := func() bool {
		if ctx.Err() != nil || (!deadline.IsZero() && time.Now().After(deadline)) {
			return false
		}
		return cfg.Messages <= 0 || budget.Add(-1) >= 0
	}
	refund := func() { budget.Add(1) }
	for w := range cfg.Sessions {
		wg.Go(func() {
			r := runSession(ctx, cfg, tpl, w, more, refund, &connected)
			mu.Lock()
			defer mu.Unlock()
			total.merge(r)
			if r.end.After(end) {
				end = r.end
			}
		})
	}
	wg.Wait()
	if !connected.Load() {
		return total, fmt.Errorf("loadgen: no session could connect to %s: %s", cfg.Addr, total.FirstErr)
	}
	total.Elapsed = end.Sub(start)
	slices.Sort(total.Latencies)
	return total, nil
}

// sessionResult is one session's share of a Result.
type sessionResult struct {
	Result
	end time.Time
}

func (r *Result) merge(s *sessionResult) {
	r.Accepted += s.Accepted
	r.Refused += s.Refused
	r.Errors += s.Errors
	r.Bytes += s.Bytes
	r.Latencies = append(r.Latencies, s.Latencies...)
	for c, n := range s.Codes {
		r.Codes[c] += n
	}
	if r.FirstErr == "" {
		r.FirstErr = s.FirstErr
	}
}

// runSession is one connection's loop; it reconnects after a failure, after
// a short pause so that a server that is down is not hammered.
// more says whether to start another transaction and takes it from the
// budget; refund gives it back when no transaction could be started.
func runSession(ctx context.Context, cfg Config, tpl *Template, w int, more func() bool, refund func(), connected *atomic.Bool) *sessionResult {
	r := &sessionResult{Result: Result{Codes: map[int]int{}}}
	to := []string{cfg.To}
	var s *Session
	defer func() {
		if s != nil {
			s.Close()
		}
	}()
	for seq := 0; more(); seq++ {
		if s == nil {
			var err error
			if s, err = Dial(ctx, cfg.Addr, cfg.Helo, cfg.Timeout); err != nil {
				r.fail(err)
				refund()
				pause(ctx, 100*time.Millisecond)
				continue
			}
			connected.Store(true)
		}
		t0 := time.Now()
		hdr := tpl.Header(cfg.From, cfg.To, strconv.Itoa(w)+"-"+strconv.Itoa(seq), t0)
		rep, err := s.Send(ctx, cfg.From, to, hdr, tpl.Body)
		t1 := time.Now()
		r.end = t1
		switch {
		case err != nil:
			r.fail(err)
			s.Abort()
			s = nil
		case rep.OK():
			r.Accepted++
			r.Bytes += int64(len(hdr) + len(tpl.Body))
			r.Latencies = append(r.Latencies, t1.Sub(t0))
		default:
			r.Refused++
			r.Codes[rep.Code]++
		}
	}
	return r
}

func (r *sessionResult) fail(err error) {
	r.Errors++
	if r.FirstErr == "" {
		r.FirstErr = err.Error()
	}
}

func pause(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
