// Package benchcli is the postern-bench command line: it parses flags and
// hands over to loadgen. It lives apart from the main so tests can run it.
package benchcli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"runtime/pprof"
	"strconv"
	"strings"
	"time"

	"github.com/postern/postern/internal/loadgen"
)

const usage = `Usage:
  postern-bench run   [flags]   run the benchmark matrix and print the table
  postern-bench load  [flags]   send load to one server and print its figures
  postern-bench serve [flags]   run a reference or ingest-only server (for run)

Run "postern-bench COMMAND -h" for a command's flags.
`

// Main runs the command in args and returns the exit code.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	var err error
	switch args[0] {
	case "run":
		err = run(ctx, args[1:], stdout, stderr)
	case "load":
		err = load(ctx, args[1:], stdout, stderr)
	case "serve":
		err = serve(ctx, args[1:], stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "postern-bench: unknown command %q\n%s", args[0], usage)
		return 2
	}
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errUsage):
		return 2
	}
	fmt.Fprintln(stderr, "postern-bench:", err)
	return 1
}

// errUsage marks a flag error the flag package has already reported.
var errUsage = errors.New("usage")

func parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return errUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(fs.Output(), "unexpected argument %q\n", fs.Arg(0))
		return errUsage
	}
	return nil
}

func serve(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	kind := fs.String("kind", "discard", "server: "+strings.Join(loadgen.ServeKinds(), ", "))
	addr := fs.String("addr", "127.0.0.1:2526", "listen address (loopback)")
	dir := fs.String("dir", "", "data directory (fsync and ingest kinds)")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the server to this file")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	return loadgen.Serve(ctx, *kind, *addr, *dir, log)
}

func load(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("load", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg loadgen.Config
	fs.StringVar(&cfg.Addr, "addr", "127.0.0.1:2525", "SMTP server")
	size := fs.String("size", "10KiB", "message size")
	fs.StringVar(&cfg.Body, "body", loadgen.BodyText, "what messages are made of: text (one us-ascii part) or pdf (a line of text and a base64 PDF)")
	fs.IntVar(&cfg.Sessions, "sessions", 10, "concurrent sessions")
	fs.DurationVar(&cfg.Duration, "duration", 5*time.Second, "how long to send")
	fs.IntVar(&cfg.Messages, "messages", 0, "stop after this many accepted (0: duration only)")
	if err := parse(fs, args); err != nil {
		return err
	}
	var err error
	if cfg.Size, err = loadgen.ParseSize(*size); err != nil {
		return err
	}
	res, err := loadgen.Run(ctx, cfg)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "accepted %d refused %d %v errors %d in %s: %.1f msgs/s %.1f MB/s p50 %s p99 %s\n",
		res.Accepted, res.Refused, res.Codes, res.Errors, res.Elapsed.Round(time.Millisecond), res.Rate(), res.MBps(),
		res.Percentile(50).Round(time.Microsecond), res.Percentile(99).Round(time.Microsecond))
	if res.FirstErr != "" {
		fmt.Fprintln(stdout, "first error:", res.FirstErr)
	}
	return nil
}

// targetNames are the targets run knows, in table order.
func targetNames() []string {
	return []string{"smtp-sink", "go-discard", "go-fsync", "go-wal", "postfix", "gateway", "ingest-spool", "ingest-each", "ingest-group"}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	targets := fs.String("targets", strings.Join(targetNames(), ","), "servers to measure, in table order")
	sizes := fs.String("sizes", "1KiB,10KiB,100KiB,1MiB", "message sizes")
	sessions := fs.String("sessions", "1,10,50", "concurrent sessions")
	body := fs.String("body", loadgen.BodyText, "what messages are made of: text (one us-ascii part) or pdf (a line of text and a base64 PDF)")
	duration := fs.Duration("duration", 3*time.Second, "measured load per server and cell")
	warmup := fs.Duration("warmup", 300*time.Millisecond, "unmeasured load before it")
	gateway := fs.String("gateway", "", "gateway binary (go build -o ... ./gateway); needed for the gateway target")
	sink := fs.String("smtp-sink", "smtp-sink", "Postfix's smtp-sink")
	source := fs.String("smtp-source", "", "Postfix's smtp-source: also load each cell with it (slower)")
	postfix := fs.String("postfix", "postfix", "the postfix command, for a private instance (needs root)")
	gwConfig := fs.String("gateway-config", "", "extra top-level YAML for the gateway's configuration")
	tmp := fs.String("tmp", "", "parent directory for server data (default $TMPDIR); its filesystem is the one measured")
	out := fs.String("o", "", "also write the report (Markdown) to this file")
	repeat := fs.Int("repeat", 1, "runs of each cell, every target once per run; with more than one, a table of each target's ratios to go-fsync (median and range over the runs) follows")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *repeat < 1 {
		return fmt.Errorf("-repeat %d: want 1 or more", *repeat)
	}
	cfg := loadgen.BenchConfig{Body: *body, Duration: *duration, Warmup: *warmup, Baseline: "go-fsync", TempDir: *tmp, Progress: stderr, Repeat: *repeat}
	if _, err := loadgen.NewTemplateOf(*body, 1<<10); err != nil {
		return err
	}
	var err error
	if cfg.Sizes, err = parseList(*sizes, loadgen.ParseSize); err != nil {
		return err
	}
	if cfg.Sessions, err = parseList(*sessions, strconv.Atoi); err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find own binary: %w", err)
	}
	var skipped []string
	for _, name := range strings.Split(*targets, ",") {
		t, why := target(strings.TrimSpace(name), self, *gateway, *sink, *postfix, *gwConfig)
		if why != "" {
			skipped = append(skipped, fmt.Sprintf("%s: %s", name, why))
			fmt.Fprintf(stderr, "skipping %s: %s\n", name, why)
			continue
		}
		cfg.Targets = append(cfg.Targets, t)
	}
	if *source != "" {
		if cfg.SMTPSource, err = exec.LookPath(*source); err != nil {
			return fmt.Errorf("smtp-source: %w", err)
		}
	}
	start := time.Now()
	rows, err := loadgen.RunBench(ctx, cfg)
	if len(rows) == 0 {
		return err
	}
	var rep strings.Builder
	writeMachine(&rep, cfg, *tmp, start)
	if len(skipped) > 0 {
		fmt.Fprintf(&rep, "Skipped: %s.\n\n", strings.Join(skipped, "; "))
	}
	if werr := loadgen.WriteTable(&rep, rows, cfg.Baseline); werr != nil {
		return werr
	}
	fmt.Fprintf(&rep, "\n(%d cells in %s)\n", len(rows), time.Since(start).Round(time.Second))
	var sp strings.Builder
	if werr := loadgen.WriteSpread(&sp, rows, cfg.Baseline); werr != nil {
		return werr
	}
	if sp.Len() > 0 {
		fmt.Fprintf(&rep, "\nAgainst %s in the same run, over %d runs: median (lowest to highest)\n\n%s", cfg.Baseline, cfg.Repeat, sp.String())
	}
	io.WriteString(stdout, rep.String())
	if *out != "" {
		if werr := os.WriteFile(*out, []byte(rep.String()), 0o644); werr != nil {
			return fmt.Errorf("write report: %w", werr)
		}
	}
	return err
}

// target builds a named target, or says why it cannot run here.
func target(name, self, gateway, sink, postfix, gwConfig string) (loadgen.Target, string) {
	switch name {
	case "smtp-sink":
		p, err := exec.LookPath(sink)
		if err != nil {
			if _, serr := os.Stat("/usr/sbin/smtp-sink"); serr != nil {
				return loadgen.Target{}, "smtp-sink not installed (scripts/ci/install-smtp-sink.sh)"
			}
			p = "/usr/sbin/smtp-sink"
		}
		return loadgen.SinkTarget(p), ""
	case "go-discard":
		return loadgen.SelfTarget(name, self, "discard"), ""
	case "go-fsync":
		return loadgen.SelfTarget(name, self, "fsync"), ""
	case "go-wal":
		return loadgen.SelfTarget(name, self, "wal"), ""
	case "ingest-spool", "ingest-each", "ingest-group":
		return loadgen.SelfTarget(name, self, name), ""
	case "postfix":
		if err := loadgen.CanRunPostfix(postfix); err != nil {
			return loadgen.Target{}, err.Error()
		}
		return loadgen.PostfixTarget(postfix), ""
	case "gateway":
		if gateway == "" {
			return loadgen.Target{}, "no -gateway binary given"
		}
		return loadgen.GatewayTarget(name, gateway, gwConfig), ""
	}
	return loadgen.Target{}, fmt.Sprintf("unknown target (want one of %s)", strings.Join(targetNames(), ", "))
}

func parseList[T any](s string, parse func(string) (T, error)) ([]T, error) {
	var out []T
	for _, f := range strings.Split(s, ",") {
		v, err := parse(strings.TrimSpace(f))
		if err != nil {
			return nil, fmt.Errorf("list %q: %w", s, err)
		}
		out = append(out, v)
	}
	return out, nil
}
