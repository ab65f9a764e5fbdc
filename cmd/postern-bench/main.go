// Command postern-bench measures Postern's SMTP front door against this
// machine's ceilings; scripts/bench drives it. Commands:
//
//	postern-bench run   [flags]   run the benchmark matrix and print the table
//	postern-bench load  [flags]   send load to one server and print its figures
//	postern-bench serve [flags]   run a reference or ingest-only server
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/postern/postern/internal/loadgen/benchcli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := benchcli.Main(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
