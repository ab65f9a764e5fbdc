package cli

import (
	"errors"
	"flag"
	"fmt"
	"os"

	"github.com/postern/postern/internal/dkimsign"
)

const dkimKeygenUsage = `Usage: gateway dkim-keygen DOMAIN SELECTOR [-type rsa|ed25519] [-bits 2048] [-out FILE]

Makes a DKIM signing key for DOMAIN and prints it (PKCS#8 PEM), or writes it
to FILE with mode 0600 (never over an existing file), then prints the DNS TXT
record to publish at SELECTOR._domainkey.DOMAIN. Publish the record before
the key signs any mail. Receivers do not all verify Ed25519 yet: sign with an
RSA key too (two selectors for the domain) when you use one.
`

// dkimKeygen is "gateway dkim-keygen": flags may come before or after the
// two arguments, as the usage line shows them after.
func dkimKeygen(e Env, args []string) int {
	fs := flag.NewFlagSet("dkim-keygen", flag.ContinueOnError)
	fs.SetOutput(e.Stderr)
	typ := fs.String("type", dkimsign.RSA, "key type: rsa or ed25519")
	bits := fs.Int("bits", 0, "RSA key size, 2048 to 4096 (default 2048)")
	out := fs.String("out", "", "write the private key to this file (mode 0600) instead of standard output")
	fs.Usage = func() {
		fmt.Fprint(e.Stderr, dkimKeygenUsage)
		fs.PrintDefaults()
	}
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return 0
			}
			return 2
		}
		if fs.NArg() == 0 {
			break
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
	if len(pos) != 2 {
		fmt.Fprintln(e.Stderr, "dkim-keygen: want DOMAIN and SELECTOR, e.g. gateway dkim-keygen example.com postern1")
		return 2
	}
	domain, selector := pos[0], pos[1]
	if err := dkimsign.CheckSelector(domain, selector); err != nil {
		fmt.Fprintln(e.Stderr, "dkim-keygen:", err)
		return 2
	}
	if *typ == dkimsign.Ed25519 && *bits == 2048 {
		*bits = 0 // -bits 2048 is the documented default, harmless beside -type ed25519
	}
	key, err := dkimsign.GenerateKey(*typ, *bits)
	if err != nil {
		fmt.Fprintln(e.Stderr, "dkim-keygen:", err)
		return 2
	}
	pemBytes, err := key.MarshalPEM()
	if err != nil {
		fmt.Fprintln(e.Stderr, "dkim-keygen:", err)
		return 1
	}
	if *out == "" {
		e.Stdout.Write(pemBytes)
	} else {
		if err := writeNewFile(*out, pemBytes); err != nil {
			fmt.Fprintln(e.Stderr, "dkim-keygen:", err)
			return 1
		}
		fmt.Fprintf(e.Stderr, "dkim-keygen: wrote the private key to %s (mode 0600); publish this record:\n", *out)
	}
	fmt.Fprintln(e.Stdout, dkimsign.TXTRecord(domain, selector, key))
	return 0
}

// writeNewFile writes a key file that did not exist: overwriting a key
// whose record is published would stop every signature verifying.
func writeNewFile(name string, b []byte) error {
	f, err := os.OpenFile(name, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("create key file: %w", err)
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		os.Remove(name)
		return fmt.Errorf("write key file: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		os.Remove(name)
		return fmt.Errorf("write key file: %w", err)
	}
	return f.Close()
}
