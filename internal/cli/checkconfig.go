package cli

import (
	"fmt"

	"github.com/postern/postern/internal/config"
	"github.com/postern/postern/internal/webhook"
)

// checkFile runs config.Check on path and prints its findings: every
// problem on stderr, one per line with the key and the fix, or "OK" on
// stdout. What it could not check (secretsmanager: references, read at run
// time) is said either way, so silence never passes for a check. It
// returns the configuration when there was no problem.
func checkFile(e Env, path string) (*config.Config, bool) {
	cfg, notes, err := config.Check(path, e.Getenv, webhook.ParseSecret)
	if err != nil {
		fmt.Fprintln(e.Stderr, err)
		for _, n := range notes {
			fmt.Fprintln(e.Stderr, "not checked:", n)
		}
		return nil, false
	}
	fmt.Fprintf(e.Stdout, "%s: OK\n", path)
	for _, n := range notes {
		fmt.Fprintln(e.Stdout, "not checked:", n)
	}
	return cfg, true
}
