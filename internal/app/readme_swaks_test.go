package app_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/postern/postern/internal/config"
	"github.com/postern/postern/internal/standin"
)

// readmeSwaks returns the arguments of README's "Send a test mail" swaks
// command, its backslash-continued lines joined.
func readmeSwaks(t *testing.T, readme string) []string {
	t.Helper()
	i := strings.Index(readme, "\n    swaks ")
	if i < 0 {
		t.Fatal("README.md has no indented swaks command")
	}
	var cmd strings.Builder
	for line := range strings.SplitSeq(readme[i+1:], "\n") {
		line = strings.TrimSpace(line)
		cont := strings.HasSuffix(line, `\`)
		cmd.WriteString(strings.TrimSuffix(line, `\`) + " ")
		if !cont {
			break
		}
	}
	// Words, or double-quoted strings (the README quotes nothing else).
	var args []string
	for _, m := range regexp.MustCompile(`"([^"]*)"|(\S+)`).FindAllStringSubmatch(cmd.String(), -1) {
		args = append(args, m[1]+m[2])
	}
	return args[1:]
}

// The README's swaks example, run as written with the swaks Debian ships
// against the embedded default, delivers README.md as an attachment named
// README.md.
func TestReadmeSwaksExample(t *testing.T) {
	t.Parallel()
	swaks, err := exec.LookPath("swaks")
	if err != nil {
		msg := "swaks not installed: apt-get install swaks (.ci/run installs it)"
		if os.Getenv(standin.RequireEnv) == "1" || os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	args := readmeSwaks(t, string(readme))

	cfg := config.Default()
	cfg.DataDir = t.TempDir()
	cfg.Listeners[0].Addr = "127.0.0.1:0"
	cfg.Admin.Addr = "127.0.0.1:0"
	cfg.Admin.Token = testAdminToken
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	a := boot(t, cfg)
	for i, arg := range args {
		if arg == "--server" && i+1 < len(args) {
			if args[i+1] != "127.0.0.1:2525" {
				t.Errorf("README's swaks talks to %s, not the embedded default's 127.0.0.1:2525", args[i+1])
			}
			args[i+1] = a.SMTPAddrs()[0].String()
		}
	}
	cmd := exec.Command(swaks, args...)
	cmd.Dir = root // where README.md is, as for a reader in the checkout
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("swaks %v: %v\n%s", args, err, out)
	}
	id := okID.FindStringSubmatch(string(out))
	if id == nil {
		t.Fatalf("swaks got no 250 with an id:\n%s", out)
	}
	if strings.Contains(string(out), "DEPRECATION") {
		t.Errorf("swaks warns about the README's form:\n%s", out)
	}

	path := filepath.Join(cfg.DataDir, "outbox", id[1]+".default.json")
	waitFor(t, func() []string {
		if _, err := os.Stat(path); err != nil {
			return nil
		}
		return []string{path}
	})
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	checkPayloadFile(t, path)
	var ev struct {
		Data struct {
			Attachments []struct {
				Filename string `json:"filename"`
				Size     int64  `json:"size"`
			} `json:"attachments"`
		} `json:"data"`
	}
	if err := json.Unmarshal(b, &ev); err != nil {
		t.Fatal(err)
	}
	atts := ev.Data.Attachments
	if len(atts) != 1 || atts[0].Filename != "README.md" || atts[0].Size != int64(len(readme)) {
		t.Errorf("attachments %+v, want one README.md of %d bytes", atts, len(readme))
	}
}
