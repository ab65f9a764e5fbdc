package cli

import (
	"errors"
	"fmt"
	"time"

	"github.com/postern/postern/internal/config"
	"github.com/postern/postern/internal/dkimsign"
	"github.com/postern/postern/internal/oauthtok"
	"github.com/postern/postern/internal/tlsconf"
	"github.com/postern/postern/internal/webhook"
)

// checkFile runs config.Check on path, and loads the TLS certificate
// files as start does, and prints the findings: every problem on stderr,
// one per line with the key and the fix, or "OK" on stdout. What it could
// not check (secretsmanager: references, read at run time) and what is
// allowed but unwise are said either way as notes, so silence never passes
// for a check. It returns the configuration
// when there was no problem.
func checkFile(e Env, path string) (*config.Config, bool) {
	cfg, notes, err := config.Check(path, e.Getenv, config.SecretDecoders{
		WebhookKey:        webhook.ParseSecret,
		Certificate:       func(pem []byte) error { return oauthtok.CheckCertificate(pem, time.Now()) },
		ServiceAccountKey: oauthtok.CheckServiceAccountKey,
		DKIMKey:           func(pem []byte) error { _, err := dkimsign.ParseKey(pem); return err },
	})
	if cfg != nil && !cfg.TLS.Disable && cfg.TLS.CertFile != "" && cfg.TLS.KeyFile != "" {
		// The same loader as start, so a certificate start would refuse
		// (unreadable, not a pair) is refused here.
		if _, terr := tlsconf.New(tlsconf.Options{CertFile: cfg.TLS.CertFile, KeyFile: cfg.TLS.KeyFile, MinVersion: cfg.TLS.MinVersion}); terr != nil {
			err = errors.Join(err, fmt.Errorf("config: tls.cert_file, tls.key_file: %w", terr))
		}
	}
	if err != nil {
		fmt.Fprintln(e.Stderr, err)
		for _, n := range notes {
			fmt.Fprintln(e.Stderr, "note:", n)
		}
		return nil, false
	}
	fmt.Fprintf(e.Stdout, "%s: OK\n", path)
	for _, n := range notes {
		fmt.Fprintln(e.Stdout, "note:", n)
	}
	return cfg, true
}
