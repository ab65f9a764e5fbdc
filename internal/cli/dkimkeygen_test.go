package cli

import (
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/postern/postern/internal/dkimsign"
	"github.com/postern/postern/internal/dkimsign/dkimsigntest"
)

var txtLine = regexp.MustCompile(`^([a-z0-9.-]+)\._domainkey\.([a-z0-9.-]+)\. IN TXT((?: "[^"]{1,255}")+)$`)

// keygenRecord checks the TXT line and returns the record's name (without
// the trailing dot) and its strings joined.
func keygenRecord(t *testing.T, line string) (name, value string) {
	t.Helper()
	m := txtLine.FindStringSubmatch(line)
	if m == nil {
		t.Fatalf("TXT line %q", line)
	}
	for _, q := range regexp.MustCompile(`"([^"]*)"`).FindAllStringSubmatch(m[3], -1) {
		value += q[1]
	}
	return m[1] + "._domainkey." + m[2], value
}

// The key printed signs mail that verifies, with go-msgauth and dkimpy,
// against the record printed.
func TestDKIMKeygen(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		args    []string
		alg     string
		strings int // TXT strings the record needs
	}{
		{[]string{"dkim-keygen", "Example.com", "postern1"}, "rsa", 2},
		{[]string{"dkim-keygen", "-type", "ed25519", "example.com", "postern1"}, "ed25519", 1},
		{[]string{"dkim-keygen", "example.com", "postern1", "-type", "rsa", "-bits", "4096"}, "rsa", 3},
	} {
		code, out, errs := runCLI(t, "", c.args...)
		if code != 0 {
			t.Fatalf("%q: exit %d: %s", c.args, code, errs)
		}
		end := strings.Index(out, "-----END PRIVATE KEY-----\n")
		if !strings.HasPrefix(out, "-----BEGIN PRIVATE KEY-----\n") || end < 0 {
			t.Fatalf("%q: no PEM key: %q", c.args, out)
		}
		key, err := dkimsign.ParseKey([]byte(out))
		if err != nil || key.Algorithm() != c.alg {
			t.Fatalf("%q: key %v %v", c.args, key, err)
		}
		line := strings.TrimSuffix(out[end+len("-----END PRIVATE KEY-----\n"):], "\n")
		name, value := keygenRecord(t, line)
		if name != "postern1._domainkey.example.com" || !strings.HasPrefix(value, "v=DKIM1; k="+c.alg+"; p=") {
			t.Errorf("%q: record %s %q", c.args, name, value)
		}
		if n := strings.Count(line, `" "`) + 1; n != c.strings {
			t.Errorf("%q: %d TXT strings, want %d", c.args, n, c.strings)
		}

		sel := dkimsign.Selector{Domain: "example.com", Selector: "postern1", Key: key}
		s, err := dkimsign.NewSigner([]dkimsign.Selector{sel}, dkimsign.Options{})
		if err != nil {
			t.Fatal(err)
		}
		m, err := s.Sign(strings.NewReader("From: a@example.com\nSubject: hi\n\nbody\n"))
		if err != nil {
			t.Fatal(err)
		}
		signed, err := io.ReadAll(m)
		m.Close()
		if err != nil {
			t.Fatal(err)
		}
		recs := dkimsigntest.Records{name: value}
		if vs := dkimsigntest.VerifyGo(t, signed, recs); len(vs) != 1 || vs[0].Err != nil {
			t.Errorf("%q: go-msgauth: %+v", c.args, vs[0])
		}
		if rs := dkimsigntest.VerifyDkimpy(t, signed, recs); len(rs) != 1 || !rs[0].Pass {
			t.Errorf("%q: dkimpy: %+v", c.args, rs)
		}
	}
}

// -out writes the key with mode 0600, never over an existing file, and
// leaves only the record on standard output.
func TestDKIMKeygenOut(t *testing.T) {
	t.Parallel()
	file := filepath.Join(t.TempDir(), "dkim.pem")
	code, out, errs := runCLI(t, "", "dkim-keygen", "-out", file, "-type", "ed25519", "bücher.example", "s1")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	fi, err := os.Stat(file)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v %v", fi, err)
	}
	b, _ := os.ReadFile(file)
	key, err := dkimsign.ParseKey(b)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out, "PRIVATE KEY") || !strings.Contains(errs, file) {
		t.Fatalf("stdout %q stderr %q", out, errs)
	}
	if name, value := keygenRecord(t, strings.TrimSuffix(out, "\n")); name != "s1._domainkey.xn--bcher-kva.example" || value != key.PublicRecord() {
		t.Errorf("record %s %q", name, value)
	}
	if code, _, errs := runCLI(t, "", "dkim-keygen", "-out", file, "example.com", "s1"); code != 1 || !strings.Contains(errs, "exists") {
		t.Errorf("over an existing file: exit %d %q", code, errs)
	}
	if b2, _ := os.ReadFile(file); string(b2) != string(b) {
		t.Error("existing key file changed")
	}
}

func TestDKIMKeygenRefuses(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"dkim-keygen"}, "want DOMAIN and SELECTOR"},
		{[]string{"dkim-keygen", "example.com"}, "want DOMAIN and SELECTOR"},
		{[]string{"dkim-keygen", "example.com", "s1", "extra"}, "want DOMAIN and SELECTOR"},
		{[]string{"dkim-keygen", "localhost", "s1"}, "fully qualified"},
		{[]string{"dkim-keygen", "example.com", "s_1"}, `selector "s_1"`},
		{[]string{"dkim-keygen", "-bits", "1024", "example.com", "s1"}, "between 2048 and 4096"},
		{[]string{"dkim-keygen", "-type", "ecdsa", "example.com", "s1"}, `algorithm "ecdsa"`},
		{[]string{"dkim-keygen", "-nope", "example.com", "s1"}, "flag provided but not defined"},
	} {
		code, out, errs := runCLI(t, "", c.args...)
		if code != 2 || out != "" || !strings.Contains(errs, c.want) {
			t.Errorf("%q: exit %d, stdout %q, stderr %q; want %q", c.args, code, out, errs, c.want)
		}
	}
	if code, _, errs := runCLI(t, "", "dkim-keygen", "-h"); code != 0 || !strings.Contains(errs, "SELECTOR._domainkey.DOMAIN") {
		t.Errorf("-h: exit %d %q", code, errs)
	}
}
