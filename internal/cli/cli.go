// Package cli is the gateway command line: run (the default), check-config
// and hash-password. It parses arguments and hands over to app.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/postern/postern/internal/app"
	"github.com/postern/postern/internal/config"
	"github.com/postern/postern/internal/configsrc"
	"github.com/postern/postern/internal/lambdafn"
	"github.com/postern/postern/internal/sdnotify"
	"github.com/postern/postern/internal/version"
)

// Env is what the command reads from and writes to, injected for tests.
type Env struct {
	Args   []string // without the program name
	Getenv func(string) string
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer
}

const usage = `Usage:
  gateway [-config FILE]           run the gateway (embedded default without a file)
  gateway check-config [-probe] FILE
                                   validate a configuration file and exit; with
                                   -probe also sign in to each OAuth relay (no mail sent)
  gateway hash-password            ask for a password (no echo, twice; or one line on
                                   stdin from a pipe), print its bcrypt hash
  gateway dkim-keygen DOMAIN SELECTOR
                                   make a DKIM signing key, print it and its DNS record
  gateway trace [-config FILE] ID  print a message's timeline
  gateway replay [-config FILE] [-route NAME] ID
                                   queue a stored message again
  gateway redrive [-config FILE] QUEUE
                                   move dead-lettered jobs back (inbound, webhook, relay, dsn)
  gateway devices [-config FILE]   what each identity did since the gateway started
  gateway reindex [-config FILE]   rebuild the message index from the store (gateway stopped)
  gateway version                  print the version, commit and build date

The configuration file can also be named by POSTERN_CONFIG. Environment
overrides (applied after the file):
`

// Main runs the command and returns the process exit code.
func Main(ctx context.Context, e Env) int {
	if len(e.Args) > 0 {
		switch e.Args[0] {
		case "check-config":
			return checkConfig(ctx, e, e.Args[1:])
		case "hash-password":
			return hashPassword(e, e.Args[1:])
		case "dkim-keygen":
			return dkimKeygen(e, e.Args[1:])
		case "trace":
			return traceCmd(ctx, e)
		case "replay":
			return replayCmd(ctx, e)
		case "redrive":
			return redriveCmd(ctx, e)
		case "devices":
			return devicesCmd(ctx, e)
		case "reindex":
			return reindexCmd(ctx, e)
		case "help":
			printUsage(e.Stdout)
			return 0
		case "version", "-version", "--version":
			fmt.Fprintln(e.Stdout, version.String())
			return 0
		}
	}
	return run(ctx, e, e.Args)
}

func printUsage(w io.Writer) {
	fmt.Fprint(w, usage)
	for _, kv := range config.EnvNames() {
		fmt.Fprintf(w, "  %-28s %s\n", kv[0], kv[1])
	}
}

func run(ctx context.Context, e Env, args []string) int {
	fs := flag.NewFlagSet("gateway", flag.ContinueOnError)
	fs.SetOutput(e.Stderr)
	fs.Usage = func() { printUsage(e.Stderr) }
	path := fs.String("config", e.Getenv("POSTERN_CONFIG"), "configuration file (YAML)")
	grace := fs.Duration("grace", 30*time.Second, "how long to let sessions and jobs in flight finish on shutdown")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(e.Stderr, "gateway: unexpected argument %q\n", fs.Arg(0))
		printUsage(e.Stderr)
		return 2
	}
	var cfg *config.Config
	var err error
	if *path == "" && e.Getenv(configsrc.EnvURI) != "" {
		// On AWS (template.yaml) the task reads its configuration from S3
		// or SSM at start, as the functions do.
		cfg, err = lambdafn.LoadConfig(ctx, e.Getenv)
	} else {
		cfg, err = config.Load(*path, e.Getenv)
	}
	if err != nil {
		fmt.Fprintln(e.Stderr, err)
		return 2
	}
	log := app.NewLogger(cfg.Log, e.Stdout)
	// Under systemd (Type=notify) the unit is up once Run serves, and
	// stopping as soon as the drain begins.
	notify := sdnotify.New(e.Getenv)
	a, err := app.New(cfg, log, app.WithNotifier(notify))
	if err != nil {
		fmt.Fprintln(e.Stderr, "gateway:", err)
		return 1
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go func() {
		for range hup {
			notify.Reloading()
			a.ReloadTLS() // failures are logged and keep the current certificate
			if *path != "" {
				checkReloaded(cfg, func() (*config.Config, error) { return config.Load(*path, e.Getenv) }, log)
			}
			notify.Ready()
		}
	}()
	if err := a.Run(ctx, *grace); err != nil {
		fmt.Fprintln(e.Stderr, "gateway:", err)
		return 1
	}
	return 0
}

func checkConfig(ctx context.Context, e Env, args []string) int {
	fs := flag.NewFlagSet("check-config", flag.ContinueOnError)
	fs.SetOutput(e.Stderr)
	probe := fs.Bool("probe", false, "also fetch a token for each relay that uses oauth and sign in with it, without sending mail; exit 1 if anything is missing")
	fs.Usage = func() {
		fmt.Fprintln(e.Stderr, "Usage: gateway check-config [-probe] FILE\n\nValidates FILE (and POSTERN_* overrides); prints every problem with the key and the fix.")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return 2
	}
	cfg, ok := checkFile(e, fs.Arg(0))
	if !ok {
		return 1
	}
	cfg.DescribePolicy(e.Stdout)
	if *probe {
		return probeRelays(ctx, e, cfg)
	}
	return 0
}

func hashPassword(e Env, args []string) int {
	fs := flag.NewFlagSet("hash-password", flag.ContinueOnError)
	fs.SetOutput(e.Stderr)
	cost := fs.Int("cost", 12, "bcrypt cost (10-16)")
	fs.Usage = func() {
		fmt.Fprintln(e.Stderr, "Usage: gateway hash-password [-cost N] [< password]\n\nPrints a bcrypt hash for an identity's password_hash. On a terminal it asks for the password twice, without echo; otherwise it reads one line on stdin.")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if *cost < 10 || *cost > 16 {
		fmt.Fprintln(e.Stderr, "hash-password: -cost must be between 10 and 16")
		return 2
	}
	pw, code := readPassword(e)
	if code != 0 {
		return code
	}
	h, err := bcrypt.GenerateFromPassword([]byte(pw), *cost)
	if err != nil {
		fmt.Fprintln(e.Stderr, "hash-password:", err)
		return 1
	}
	fmt.Fprintln(e.Stdout, string(h))
	return 0
}
