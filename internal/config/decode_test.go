package config

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// FuzzKeyErrors: the key-path walk never panics, and whatever it passes
// yaml.v3's strict decoder passes too, so an operator never falls through
// to an error that names Go types.
func FuzzKeyErrors(f *testing.F) {
	for _, s := range []string{
		"hostname: a\n",
		"limits: {max_recipients: 3, data_timeout: 5m}\n",
		"routes:\n  - name: a\n    match: {recipients: [\"*\"], headers: {X-A: b}}\n    webhook: {url: x, allow: [a], secrets: [b]}\n",
		"a: &x {b: 1}\nlimits:\n  <<: *x\n",
		"identities: [{name: a, networks: [\"10.0.0.0/8\"], max_message_bytes: 1}]\n",
		"dsn: {relay: {type: smtp, oauth: {provider: entra}}}\n",
		"listeners: ~\n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		b := []byte(s)
		errs := keyErrors(b)
		if len(errs) > 0 {
			for _, err := range errs {
				if strings.Contains(err.Error(), "config.") {
					t.Fatalf("error names a Go type: %v", err)
				}
			}
			return
		}
		c := Default()
		dec := yaml.NewDecoder(bytes.NewReader(b))
		dec.KnownFields(true)
		if err := dec.Decode(c); err != nil && !errors.Is(err, io.EOF) {
			t.Fatalf("walk passed %q, strict decode failed: %v", s, err)
		}
	})
}

// Aliases that repeat a subtree do not make the walk unbounded.
func TestKeyErrorsBoundsAliases(t *testing.T) {
	t.Parallel()
	yaml := "x-r: &r {name: a, match: {recipients: [" + strings.Repeat("a, ", 999) + "a]}}\n" +
		"x-rs: &rs [" + strings.Repeat("*r, ", 199) + "*r]\n" +
		"routes: [" + strings.Repeat("*r, ", 199) + "*r]\n"
	errs := keyErrors([]byte(yaml))
	if len(errs) == 0 || !strings.Contains(errs[len(errs)-1].Error(), "too many values") {
		t.Fatalf("errors = %v, want the walk cut short", errs)
	}
}
