package packaging_test

import (
	"debug/elf"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/postern/postern/internal/config"
	"github.com/postern/postern/internal/dockerfile"
)

// There is no Docker engine here or in CI: the image itself is not built.
// These tests run the Dockerfile's go build commands, flags and all, in a
// copy of the build context its .dockerignore leaves, and check what the
// image promises: static binaries with the version linked in, a
// distroless non-root final stage that drains on SIGTERM within docker
// stop's timeout, a HEALTHCHECK on /readyz, and configs that load.

func readDockerfile(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot(t), "packaging", "docker", "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// dockerGoBuilds returns the Dockerfile's go build commands, with ${ARG}s
// replaced from args (one it does not set fails the test).
func dockerGoBuilds(t *testing.T, df string, args map[string]string) []dockerfile.GoBuild {
	t.Helper()
	builds, err := dockerfile.GoBuilds(df, args)
	if err != nil {
		t.Fatal(err)
	}
	return builds
}

// buildContext copies what Dockerfile.dockerignore lets into the build
// context: it must be of the form `*`, then `!path` lines, then the
// `**/*_test.go` and `**/testdata/` exclusions.
func buildContext(t *testing.T, root string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, "packaging", "docker", "Dockerfile.dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	var keep []string
	for _, l := range strings.Split(string(b), "\n") {
		l = strings.TrimSpace(l)
		switch {
		case l == "" || strings.HasPrefix(l, "#") || l == "*" || l == "**/*_test.go" || l == "**/testdata/":
		case strings.HasPrefix(l, "!"):
			keep = append(keep, strings.TrimSuffix(l[1:], "/"))
		default:
			t.Fatalf("Dockerfile.dockerignore line %q: this test does not know the pattern", l)
		}
	}
	ctx := t.TempDir()
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		rel = filepath.ToSlash(rel)
		if d.IsDir() {
			if d.Name() == "testdata" {
				return filepath.SkipDir
			}
			for _, k := range keep { // walk only towards and inside what is kept
				if rel == "." || rel == k || strings.HasPrefix(rel, k+"/") || strings.HasPrefix(k, rel+"/") {
					return nil
				}
			}
			return filepath.SkipDir
		}
		if strings.HasSuffix(rel, "_test.go") || !d.Type().IsRegular() {
			return nil
		}
		for _, k := range keep {
			if rel == k || strings.HasPrefix(rel, k+"/") {
				b, err := os.ReadFile(p)
				if err != nil {
					return err
				}
				dst := filepath.Join(ctx, rel)
				if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
					return err
				}
				return os.WriteFile(dst, b, 0o644)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return ctx
}

// The image's three binaries build from its build context with its own
// commands, static, with the version reaching `postern version`.
func TestOnPremImageBuild(t *testing.T) {
	t.Parallel()
	goBin := needTool(t, "go", "install the Go go.mod names")
	root := repoRoot(t)
	const version = "9.9.9~image"
	builds := dockerGoBuilds(t, readDockerfile(t), map[string]string{
		"TARGETOS": "linux", "TARGETARCH": runtime.GOARCH, "VERSION": version, "COMMIT": "c0ffee", "BUILD_DATE": "2026-12-05T00:00:00Z",
	})
	outs := map[string]string{}
	for _, b := range builds {
		outs[b.Out] = ""
	}
	for _, want := range []string{"/out/postern", "/out/healthcheck", "/out/receiver"} {
		if _, ok := outs[want]; !ok {
			t.Fatalf("Dockerfile builds %v, want %s among them", outs, want)
		}
	}
	ctx := buildContext(t, root)
	bins := t.TempDir()
	for _, b := range builds {
		joined := strings.Join(append(b.Env, b.Args...), " ")
		for _, want := range []string{"CGO_ENABLED=0", "-trimpath", "-s -w -buildid="} {
			if !strings.Contains(joined, want) {
				t.Errorf("%s built without %s", b.Out, want)
			}
		}
		args := append([]string(nil), b.Args...)
		bin := filepath.Join(bins, filepath.Base(b.Out))
		for i := range args {
			if args[i] == b.Out {
				args[i] = bin
			}
		}
		start := time.Now()
		cmd := exec.Command(goBin, args...)
		cmd.Dir = ctx
		cmd.Env = append(os.Environ(), b.Env...)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go %s in the build context: %v\n%s", strings.Join(args, " "), err, out)
		}
		t.Logf("built %s in %s", b.Out, time.Since(start).Round(100*time.Millisecond))
		f, err := elf.Open(bin)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range f.Progs {
			if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
				t.Errorf("%s is dynamically linked; distroless/static has no libc", b.Out)
			}
		}
		f.Close()
	}
	out, err := exec.Command(filepath.Join(bins, "postern"), "version").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "postern "+version+" (commit c0ffee, built 2026-12-05T00:00:00Z") {
		t.Errorf("the image's postern version says %q (%v): the -X flags miss internal/version", out, err)
	}
}

// The final stage and the configs keep the container's promises.
func TestOnPremImagePromises(t *testing.T) {
	t.Parallel()
	root := repoRoot(t)
	df := readDockerfile(t)
	final := df[strings.LastIndex(df, "\nFROM "):]
	if !regexp.MustCompile(`^\nFROM gcr\.io/distroless/static\S*\s*\n`).MatchString(final) {
		t.Errorf("the final stage is not distroless/static: %q", strings.SplitN(final, "\n", 3)[1])
	}
	if !regexp.MustCompile(`(?m)^FROM \S+ AS receiver$`).MatchString(df) {
		t.Error("no receiver stage, which compose.yaml builds")
	}
	if m := regexp.MustCompile(`(?m)^USER (\d+):(\d+)$`).FindStringSubmatch(final); m == nil || m[1] == "0" {
		t.Error("the final stage has no numeric non-root USER")
	}
	for _, want := range []string{
		"\nVOLUME [\"/var/lib/postern\"]\n",
		"\nSTOPSIGNAL SIGTERM\n",
		"\nENTRYPOINT [\"/usr/bin/postern\"]\n",
		"\nCOPY packaging/docker/postern.yaml /etc/postern/postern.yaml\n",
	} {
		if !strings.Contains(final, want) {
			t.Errorf("the final stage lacks %q", strings.TrimSpace(want))
		}
	}
	hc := regexp.MustCompile(`(?m)^HEALTHCHECK .*CMD \["/usr/bin/postern-healthcheck", "-addr", "([^"]+)", "-path", "/readyz"\]$`).FindStringSubmatch(final)
	if hc == nil {
		t.Fatal("no HEALTHCHECK running postern-healthcheck on /readyz")
	}
	cmdLine := regexp.MustCompile(`(?m)^CMD \[(.*)\]$`).FindStringSubmatch(final)
	if cmdLine == nil {
		t.Fatal("no CMD")
	}
	var cmdArgs []string
	if err := yaml.Unmarshal([]byte("["+cmdLine[1]+"]"), &cmdArgs); err != nil {
		t.Fatal(err)
	}
	grace := flagValue(t, cmdArgs, "-grace")
	if grace >= 10*time.Second-time.Second {
		t.Errorf("CMD -grace %s: docker stop kills after 10 s by default, so the drain would be cut", grace)
	}

	cfg, err := config.Load(filepath.Join(root, "packaging", "docker", "postern.yaml"), func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	if cfg.DataDir != "/var/lib/postern" {
		t.Errorf("the image's data_dir is %s, not the VOLUME", cfg.DataDir)
	}
	if !strings.HasSuffix(cfg.Listeners[0].Addr, ":2525") || !strings.HasPrefix(cfg.Listeners[0].Addr, "0.0.0.0") {
		t.Errorf("the image's SMTP listener is %s, want 0.0.0.0:2525 (what EXPOSE and -p 25:2525 name)", cfg.Listeners[0].Addr)
	}
	if _, port, _ := strings.Cut(cfg.Admin.Addr, ":"); !strings.HasSuffix(hc[1], ":"+port) {
		t.Errorf("HEALTHCHECK asks %s, the admin listener is %s", hc[1], cfg.Admin.Addr)
	}

	// compose.yaml: the gateway's config posts to the receiver, and stop
	// waits longer than the drain.
	b, err := os.ReadFile(filepath.Join(root, "packaging", "docker", "compose.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var compose struct {
		Services map[string]struct {
			Build struct {
				Dockerfile, Target string
			}
			Command         []string
			Ports           []string
			Volumes         []string
			StopGracePeriod string `yaml:"stop_grace_period"`
		}
	}
	if err := yaml.Unmarshal(b, &compose); err != nil {
		t.Fatal(err)
	}
	gw, ok := compose.Services["postern"]
	if !ok || compose.Services["receiver"].Build.Target != "receiver" {
		t.Fatalf("compose.yaml lacks the postern service or the receiver built from the receiver stage: %+v", compose.Services)
	}
	stop, err := time.ParseDuration(gw.StopGracePeriod)
	if err != nil {
		t.Fatalf("stop_grace_period: %v", err)
	}
	if g := flagValue(t, gw.Command, "-grace"); stop < g+3*time.Second {
		t.Errorf("stop_grace_period %s leaves the -grace %s drain no margin", stop, g)
	}
	if !strings.Contains(strings.Join(gw.Ports, " "), "25:2525") || !strings.Contains(strings.Join(gw.Volumes, " "), "postern:/var/lib/postern") {
		t.Errorf("compose.yaml's postern publishes %v and mounts %v, want 25:2525 and postern:/var/lib/postern", gw.Ports, gw.Volumes)
	}
	var mounted string
	for _, v := range gw.Volumes {
		if src, dst, ok := strings.Cut(strings.TrimSuffix(v, ":ro"), ":"); ok && dst == flagString(gw.Command, "-config") {
			mounted = filepath.Join(root, "packaging", "docker", src)
		}
	}
	if mounted == "" {
		t.Fatalf("compose.yaml mounts no file at the -config path %s", flagString(gw.Command, "-config"))
	}
	ccfg, err := config.Load(mounted, func(k string) string {
		if k == "POSTERN_WEBHOOK_SECRET" {
			return "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSwMfKQ9r8GKYq="
		}
		return ""
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(ccfg.Routes) == 0 || ccfg.Routes[0].Webhook == nil || !strings.HasPrefix(ccfg.Routes[0].Webhook.URL, "http://receiver:") {
		t.Errorf("compose's config does not post to the receiver service: %+v", ccfg.Routes)
	}
}

func flagString(args []string, name string) string {
	for i, a := range args {
		if a == name && i+1 < len(args) {
			return args[i+1]
		}
	}
	return ""
}

func flagValue(t *testing.T, args []string, name string) time.Duration {
	t.Helper()
	d, err := time.ParseDuration(flagString(args, name))
	if err != nil {
		t.Fatalf("%s in %v: %v", name, args, err)
	}
	return d
}
