package loadgen

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// BenchConfig is a benchmark matrix: every target at every size and
// concurrency, each on a fresh instance.
type BenchConfig struct {
	Targets  []Target
	Sizes    []int
	Sessions []int
	Body     string        // what messages are made of (Config.Body)
	Duration time.Duration // measured load per cell
	Warmup   time.Duration // unmeasured load before it; default 300ms
	// Baseline names the target every row is compared with (the durable
	// ceiling); rows of the same cell get Ratio = their rate / its rate.
	Baseline string
	// SMTPSource, when set, is Postfix's smtp-source: each cell is then
	// also loaded by it, after the Go client, for a second opinion on
	// messages/s (it records no latencies).
	SMTPSource string
	// Repeat runs each cell this many times (default 1), every target once
	// per run in order, so a target and the baseline are measured next to
	// each other in each run; WriteSpread summarises the runs' ratios.
	Repeat int
	// DrainTimeout bounds the wait for a pipeline (Proc.Delivered) to hand
	// on everything accepted; default 60s.
	DrainTimeout time.Duration
	TempDir      string    // parent of the per-instance directories; default os.TempDir()
	Progress     io.Writer // one line per cell; nil discards
}

// Row is one cell's measurement for one target.
type Row struct {
	Target   string
	Size     int
	Sessions int
	Run      int // 1-based, of Runs runs of the cell (BenchConfig.Repeat)
	Runs     int
	Result   *Result
	// CPU is the server's CPU time (its whole process tree) during the
	// measured window.
	CPU time.Duration
	// DrainCPU, for a target with a pipeline, is its CPU from the start of
	// the warm-up until everything accepted was handed on, and Drained the
	// number of messages that covers; zero when not measured.
	DrainCPU time.Duration
	Drained  int64
	// Allocated is the bytes the server allocated over the same span as
	// DrainCPU, when it can say (Proc.Allocated); zero when not measured.
	Allocated int64
	PeakRSS   int64   // bytes, the server process's VmHWM; 0 if unknown
	Ratio     float64 // Rate / the baseline's Rate in the same cell; 0 if none
	// SourceRate is smtp-source's messages/s, when it ran.
	SourceRate float64
	Err        string
}

// CPUPer1000 is server CPU seconds per 1,000 accepted messages.
func (r *Row) CPUPer1000() float64 {
	if r.Result == nil || r.Result.Accepted == 0 {
		return 0
	}
	return r.CPU.Seconds() * 1000 / float64(r.Result.Accepted)
}

// AllocatedPerMsg is the bytes the server allocated per message handed
// on, over the pipeline's span; 0 when not measured.
func (r *Row) AllocatedPerMsg() float64 {
	if r.Drained == 0 || r.Allocated <= 0 {
		return 0
	}
	return float64(r.Allocated) / float64(r.Drained)
}

// DrainCPUPer1000 is DrainCPU seconds per 1,000 messages handed on.
func (r *Row) DrainCPUPer1000() float64 {
	if r.Drained == 0 {
		return 0
	}
	return r.DrainCPU.Seconds() * 1000 / float64(r.Drained)
}

// RunBench runs the matrix and returns its rows, cell by cell in target
// order. A target that fails in a cell gets a row with Err set; the run goes
// on.
func RunBench(ctx context.Context, cfg BenchConfig) ([]Row, error) {
	if cfg.Warmup <= 0 {
		cfg.Warmup = 300 * time.Millisecond
	}
	if cfg.DrainTimeout <= 0 {
		cfg.DrainTimeout = 60 * time.Second
	}
	if cfg.Progress == nil {
		cfg.Progress = io.Discard
	}
	cfg.Repeat = max(cfg.Repeat, 1)
	var rows []Row
	for _, size := range cfg.Sizes {
		for _, sessions := range cfg.Sessions {
			for run := 1; run <= cfg.Repeat; run++ {
				cell := len(rows)
				for _, t := range cfg.Targets {
					if err := ctx.Err(); err != nil {
						return rows, err
					}
					row := runCell(ctx, cfg, t, size, sessions)
					row.Run, row.Runs = run, cfg.Repeat
					fmt.Fprintln(cfg.Progress, row.summary())
					rows = append(rows, row)
				}
				setRatios(rows[cell:], cfg.Baseline)
			}
		}
	}
	return rows, nil
}

func setRatios(cell []Row, baseline string) {
	var base float64
	for _, r := range cell {
		if r.Target == baseline && r.Result != nil {
			base = r.Result.Rate()
		}
	}
	if base == 0 {
		return
	}
	for i := range cell {
		if cell[i].Result != nil {
			cell[i].Ratio = cell[i].Result.Rate() / base
		}
	}
}

func (r *Row) summary() string {
	if r.Err != "" {
		return fmt.Sprintf("%-14s %8s x%-3d error: %s", r.Target, FormatSize(r.Size), r.Sessions, r.Err)
	}
	return fmt.Sprintf("%-14s %8s x%-3d %9.1f msg/s %8.1f MB/s p50 %7.2f ms p99 %7.2f ms cpu %.3f s/1k refused %d errors %d",
		r.Target, FormatSize(r.Size), r.Sessions, r.Result.Rate(), r.Result.MBps(),
		ms(r.Result.Percentile(50)), ms(r.Result.Percentile(99)), r.CPUPer1000(), r.Result.Refused, r.Result.Errors)
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// runCell measures one target in one cell on a fresh instance.
func runCell(ctx context.Context, cfg BenchConfig, t Target, size, sessions int) (row Row) {
	row = Row{Target: t.Name, Size: size, Sessions: sessions}
	dir, err := os.MkdirTemp(cfg.TempDir, "postern-bench-"+t.Name+"-")
	if err != nil {
		row.Err = err.Error()
		return row
	}
	defer os.RemoveAll(dir)
	p, err := t.Start(ctx, dir)
	if err != nil {
		row.Err = firstLine(err.Error())
		return row
	}
	defer func() {
		if err := p.Stop(10 * time.Second); err != nil && row.Err == "" {
			row.Err = firstLine(err.Error())
		}
	}()
	lc := Config{Addr: p.Addr, Sessions: sessions, Size: size, Body: cfg.Body, Duration: cfg.Warmup}
	cpu0, _ := TreeCPU(p.Pid())
	var alloc0 int64 = -1
	if p.Allocated != nil {
		if n, err := p.Allocated(); err == nil {
			alloc0 = n
		}
	}
	warm, err := Run(ctx, lc)
	if err != nil {
		row.Err = firstLine(err.Error())
		return row
	}
	lc.Duration = cfg.Duration
	before, err := TreeCPU(p.Pid())
	if err != nil {
		row.Err = err.Error()
		return row
	}
	res, err := Run(ctx, lc)
	after, cerr := TreeCPU(p.Pid())
	if err != nil || cerr != nil {
		row.Err = firstLine(fmt.Sprint(err, cerr))
		return row
	}
	row.Result, row.CPU = res, after-before
	peakRSS := func() int64 {
		if t.Forks {
			return 0
		}
		n, _ := PeakRSS(p.Pid())
		return n
	}
	row.PeakRSS = peakRSS()
	if p.Delivered != nil {
		want := int64(warm.Accepted + res.Accepted)
		deadline := time.Now().Add(cfg.DrainTimeout)
		for p.Delivered() < want && time.Now().Before(deadline) && ctx.Err() == nil {
			time.Sleep(20 * time.Millisecond)
		}
		end, _ := TreeCPU(p.Pid())
		row.DrainCPU, row.Drained = end-cpu0, p.Delivered()
		if alloc0 >= 0 {
			if n, err := p.Allocated(); err == nil {
				row.Allocated = n - alloc0
			}
		}
		if row.Drained < want {
			row.Err = fmt.Sprintf("pipeline handed on %d of %d accepted within %s", row.Drained, want, cfg.DrainTimeout)
		}
		row.PeakRSS = peakRSS()
	}
	if cfg.SMTPSource != "" && res.Accepted > 0 {
		row.SourceRate, err = runSMTPSource(ctx, cfg.SMTPSource, p.Addr, size, sessions, max(sessions*5, int(res.Rate()*cfg.Duration.Seconds())))
		if err != nil && row.Err == "" {
			row.Err = "smtp-source: " + firstLine(err.Error())
		}
	}
	return row
}

// runSMTPSource sends count messages with Postfix's smtp-source over
// sessions connections kept open (-d) and returns messages/s. -l is the
// body length; smtp-source adds its own few headers.
func runSMTPSource(ctx context.Context, path, addr string, size, sessions, count int) (float64, error) {
	start := time.Now()
	cmd := exec.CommandContext(ctx, path, "-d", "-s", strconv.Itoa(sessions), "-m", strconv.Itoa(count),
		"-l", strconv.Itoa(max(size-headerBytes, 1)), "-f", "source@bench.test", "-t", "sink@bench.test",
		"-M", "source.bench.test", addr)
	if out, err := cmd.CombinedOutput(); err != nil {
		return 0, fmt.Errorf("%w: %s", err, strings.TrimSpace(string(out)))
	}
	return float64(count) / time.Since(start).Seconds(), nil
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	return s
}

// FormatSize writes n as 1KiB, 100KiB, 1MiB or plain bytes.
func FormatSize(n int) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return strconv.Itoa(n>>20) + "MiB"
	case n >= 1<<10 && n%(1<<10) == 0:
		return strconv.Itoa(n>>10) + "KiB"
	}
	return strconv.Itoa(n) + "B"
}

// ParseSize reads a size as FormatSize writes it (also KB/MB as binary units,
// and plain bytes).
func ParseSize(s string) (int, error) {
	s = strings.TrimSpace(s)
	mult := 1
	for _, u := range []struct {
		suffix string
		mult   int
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"KB", 1 << 10}, {"MB", 1 << 20}, {"K", 1 << 10}, {"M", 1 << 20}, {"B", 1}} {
		if rest, ok := strings.CutSuffix(s, u.suffix); ok {
			s, mult = rest, u.mult
			break
		}
	}
	n, err := strconv.Atoi(s)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("loadgen: size %q: want a positive number with an optional KiB or MiB", s)
	}
	return n * mult, nil
}
