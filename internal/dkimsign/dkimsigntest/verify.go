// Package dkimsigntest verifies DKIM signatures in tests, with
// go-msgauth's verifier and with an independent one (Debian's python3-dkim,
// dkimpy), both fed the test's key records instead of DNS.
package dkimsigntest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/emersion/go-msgauth/dkim"

	"github.com/postern/postern/internal/standin"
)

// Records maps a key's DNS name ("sel._domainkey.example.com", no
// trailing dot) to its TXT value ("v=DKIM1; k=rsa; p=...").
type Records map[string]string

// LookupTXT answers go-msgauth's lookups from r; any other name is NXDOMAIN.
func (r Records) LookupTXT(name string) ([]string, error) {
	if v, ok := r[strings.ToLower(strings.TrimSuffix(name, "."))]; ok {
		return []string{v}, nil
	}
	return nil, fmt.Errorf("lookup %s: no such host", name)
}

// VerifyGo checks every signature in msg with go-msgauth and returns one
// verification per signature; it fails t when msg cannot be read.
func VerifyGo(t testing.TB, msg []byte, r Records) []*dkim.Verification {
	t.Helper()
	vs, err := dkim.VerifyWithOptions(bytes.NewReader(msg), &dkim.VerifyOptions{LookupTXT: r.LookupTXT})
	if err != nil {
		t.Fatalf("go-msgauth verify: %v", err)
	}
	return vs
}

// DkimpyResult is what dkimpy said about one signature.
type DkimpyResult struct {
	Domain string `json:"d"`
	Pass   bool   `json:"pass"`
}

// The script takes the records as JSON in argv[1] and the message on
// stdin; it verifies each DKIM-Signature in turn and prints one JSON
// object per signature.
const dkimpyScript = `
import sys, json, dkim
recs = json.loads(sys.argv[1])
def dnsfunc(name, timeout=5):
    v = recs.get(name.decode().rstrip('.').lower())
    return v.encode() if v is not None else None
msg = sys.stdin.buffer.read()
d = dkim.DKIM(msg, minkey=1024)
n = sum(1 for k, _ in d.headers if k.lower() == b'dkim-signature')
out = []
for i in range(n):
    try:
        ok = dkim.DKIM(msg).verify(idx=i, dnsfunc=dnsfunc)
    except dkim.DKIMException as e:
        sys.stderr.write('signature %d: %s\n' % (i, e))
        ok = False
    dom = dkim.DKIM(msg)
    dom.verify_headerprep(i)
    out.append({'d': (dom.domain or b'').decode(), 'pass': bool(ok)})
print(json.dumps(out))
`

// Hint says how to get the independent verifier.
const Hint = "python3-dkim (dkimpy) not found; install it with apt-get install -y --no-install-recommends python3-dkim=1.1.4-1 (or set POSTERN_DKIMPY_PYTHON to a python3 that imports dkim)"

// dkimpyPython finds a python3 that imports dkim: POSTERN_DKIMPY_PYTHON,
// Debian's /usr/bin/python3 (the package installs there, which a pyenv
// python3 earlier on PATH does not see), then python3 on PATH.
func dkimpyPython(t testing.TB) string {
	t.Helper()
	cands := []string{"/usr/bin/python3", "python3"}
	if p := os.Getenv("POSTERN_DKIMPY_PYTHON"); p != "" {
		cands = []string{p}
	}
	for _, p := range cands {
		if exec.Command(p, "-c", "import dkim").Run() == nil {
			return p
		}
	}
	if os.Getenv(standin.RequireEnv) == "1" || os.Getenv("CI") == "true" {
		t.Fatal(Hint)
	}
	t.Skip(Hint)
	return ""
}

// VerifyDkimpy checks every signature in msg with dkimpy, skipping t when
// dkimpy is not installed (failing it when stand-ins are required).
func VerifyDkimpy(t testing.TB, msg []byte, r Records) []DkimpyResult {
	t.Helper()
	py := dkimpyPython(t)
	recs, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(py, "-c", dkimpyScript, string(recs))
	cmd.Stdin = bytes.NewReader(msg)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("dkimpy: %v\n%s", err, stderr.String())
	}
	var res []DkimpyResult
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("dkimpy output %q: %v", out, err)
	}
	if stderr.Len() > 0 {
		t.Logf("dkimpy: %s", stderr.String())
	}
	return res
}
