package templatetest

import (
	"debug/elf"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/postern/postern/internal/dockerfile"
)

// lambdaGoFlags reads the GOFLAGS scripts/build gives `sam build`, so this
// test builds exactly what a deployment ships.
func lambdaGoFlags(t *testing.T) string {
	t.Helper()
	m := regexp.MustCompile(`(?m)^LAMBDA_GOFLAGS="([^"]*)"$`).FindStringSubmatch(mustRead(t, filepath.Join(repoRoot(t), "scripts", "build")))
	if m == nil {
		t.Fatal(`scripts/build has no LAMBDA_GOFLAGS="..." line`)
	}
	if !strings.Contains(m[1], "-tags=lambda.norpc") {
		t.Errorf("LAMBDA_GOFLAGS %q lacks -tags=lambda.norpc (provided.al2023 needs no RPC shim)", m[1])
	}
	return m[1]
}

// goBuild runs go with extra environment in dir.
func goBuild(t *testing.T, dir string, env []string, args ...string) {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("go not on PATH: %v", err)
	}
	cmd := exec.Command(goBin, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go %s in %s: %v\n%s", strings.Join(args, " "), dir, err, out)
	}
}

// checkLinuxArm64Static fails unless path is a static linux/arm64 ELF.
func checkLinuxArm64Static(t *testing.T, path string) *elf.File {
	t.Helper()
	f, err := elf.Open(path)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	t.Cleanup(func() { f.Close() })
	if f.Machine != elf.EM_AARCH64 || f.Class != elf.ELFCLASS64 {
		t.Errorf("%s: machine %v class %v, want arm64", path, f.Machine, f.Class)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Errorf("%s has an ELF interpreter: not static (CGO_ENABLED=0 missing?)", path)
		}
	}
	if libs, _ := f.ImportedLibraries(); len(libs) > 0 {
		t.Errorf("%s links %v dynamically", path, libs)
	}
	return f
}

// TestFunctionsCrossCompile builds every function as `sam build` does with
// BuildMethod go1.x (go build -o <artifacts>/bootstrap <CodeUri>, run in
// the CodeUri, GOOS=linux GOARCH from Architectures) plus scripts/build's
// environment, and checks each result is a static arm64 bootstrap without
// the RPC shim.
func TestFunctionsCrossCompile(t *testing.T) {
	t.Parallel()
	root := repoRoot(t)
	tpl := loadTemplate(t)
	env := []string{"GOOS=linux", "GOARCH=arm64", "CGO_ENABLED=0", "GOFLAGS=" + lambdaGoFlags(t)}
	for _, s := range stages {
		code := filepath.Join(root, filepath.FromSlash(scalarString(tpl.Resources[s.function].Properties["CodeUri"])))
		bin := filepath.Join(t.TempDir(), "bootstrap")
		goBuild(t, code, env, "build", "-o", bin, code)
		f := checkLinuxArm64Static(t, bin)
		syms, err := f.Symbols()
		if err != nil {
			t.Fatalf("%s: symbols: %v", s.function, err)
		}
		var lambdaStart, rpc bool
		for _, sym := range syms {
			lambdaStart = lambdaStart || strings.HasPrefix(sym.Name, "github.com/aws/aws-lambda-go/lambda.Start")
			rpc = rpc || strings.HasPrefix(sym.Name, "net/rpc.")
		}
		if !lambdaStart {
			t.Errorf("%s: no lambda.Start in the binary", s.function)
		}
		if rpc {
			t.Errorf("%s: net/rpc linked in: lambda.norpc did not apply", s.function)
		}
	}
}

// dockerGoBuilds returns infra/Dockerfile's go build commands, for the
// arm64 image Fargate runs.
func dockerGoBuilds(t *testing.T, df string) []dockerfile.GoBuild {
	t.Helper()
	builds, err := dockerfile.GoBuilds(df, map[string]string{"TARGETOS": "linux", "TARGETARCH": "arm64"})
	if err != nil {
		t.Fatal(err)
	}
	return builds
}

// TestGatewayImageBuild runs infra/Dockerfile's go build commands, flags
// and all (there is no Docker engine here), and checks the image's
// promises: static arm64 binaries, a distroless final stage as a numeric
// non-root user, a HEALTHCHECK with the probe, the container ports the
// template maps.
func TestGatewayImageBuild(t *testing.T) {
	t.Parallel()
	root := repoRoot(t)
	df := mustRead(t, filepath.Join(root, "infra", "Dockerfile"))
	builds := dockerGoBuilds(t, df)
	outs := map[string]bool{}
	for _, b := range builds {
		outs[b.Out] = true
	}
	if !outs["/out/gateway"] || !outs["/out/healthcheck"] {
		t.Fatalf("Dockerfile builds %v, want /out/gateway and /out/healthcheck", outs)
	}
	dir := t.TempDir()
	for _, b := range builds {
		if !strings.Contains(strings.Join(b.Env, " "), "CGO_ENABLED=0") {
			t.Errorf("%s built without CGO_ENABLED=0", b.Out)
		}
		args := append([]string(nil), b.Args...)
		bin := filepath.Join(dir, filepath.Base(b.Out))
		for i := range args {
			if args[i] == b.Out {
				args[i] = bin
			}
		}
		goBuild(t, root, b.Env, args...)
		f := checkLinuxArm64Static(t, bin)
		if _, err := f.Symbols(); !errors.Is(err, elf.ErrNoSymbols) {
			t.Errorf("%s keeps its symbol table (-ldflags=-s missing?): %v", b.Out, err)
		}
	}

	stages := regexp.MustCompile(`(?m)^FROM\s+(?:--platform=\S+\s+)?(\S+)`).FindAllStringSubmatch(df, -1)
	if len(stages) < 2 {
		t.Fatalf("Dockerfile has %d stages, want a build stage and a final one", len(stages))
	}
	final := stages[len(stages)-1][1]
	if !strings.HasPrefix(final, "gcr.io/distroless/static") && final != "scratch" {
		t.Errorf("final stage %s is neither distroless/static nor scratch", final)
	}
	finalStage := df[strings.LastIndex(df, "\nFROM "):]
	if m := regexp.MustCompile(`(?m)^USER\s+(\d+)(:\d+)?\s*$`).FindStringSubmatch(finalStage); m == nil || m[1] == "0" {
		t.Error("final stage has no numeric non-root USER")
	} else if !strings.Contains(mustRead(t, filepath.Join(root, "template.yaml")), `User: "`+strings.TrimSpace(m[0][len("USER "):])+`"`) {
		t.Errorf("task definition User differs from the image's %s", m[0])
	}
	if !regexp.MustCompile(`(?m)^HEALTHCHECK .*CMD \["/healthcheck"\]`).MatchString(finalStage) {
		t.Error("no HEALTHCHECK running /healthcheck (distroless has no shell or curl)")
	}
	if !regexp.MustCompile(`(?m)^ENTRYPOINT \["/gateway"\]`).MatchString(finalStage) {
		t.Error(`ENTRYPOINT is not ["/gateway"]`)
	}
	expose := regexp.MustCompile(`(?m)^EXPOSE (.*)$`).FindStringSubmatch(finalStage)
	for _, p := range []string{"2525", "2587", "2465"} {
		if expose == nil || !strings.Contains(expose[1], p) {
			t.Errorf("EXPOSE does not list %s", p)
		}
	}
	if !strings.Contains(finalStage, "--chown=65532:65532") || !strings.Contains(finalStage, " /data") {
		t.Error("the final stage does not create /data owned by the runtime user (the task's writable volume)")
	}
}

// TestDockerContextHasTheSources: infra/Dockerfile.dockerignore keeps only
// what the image compiles from; every module package the two binaries
// import must be inside what it keeps.
func TestDockerContextHasTheSources(t *testing.T) {
	t.Parallel()
	root := repoRoot(t)
	var keep []string
	for _, line := range strings.Split(mustRead(t, filepath.Join(root, "infra", "Dockerfile.dockerignore")), "\n") {
		if p, ok := strings.CutPrefix(strings.TrimSpace(line), "!"); ok {
			keep = append(keep, strings.TrimSuffix(p, "/"))
		}
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(goBin, "list", "-deps", "-f", "{{if .Module}}{{if .Module.Main}}{{.Dir}}{{end}}{{end}}", "./gateway", "./infra/healthcheck")
	cmd.Dir = root
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	dirs := strings.Fields(string(out))
	if len(dirs) < 5 {
		t.Fatalf("go list found only %v", dirs)
	}
	for _, d := range dirs {
		rel, err := filepath.Rel(root, d)
		if err != nil {
			t.Fatal(err)
		}
		rel = filepath.ToSlash(rel)
		ok := false
		for _, k := range keep {
			if rel == k || strings.HasPrefix(rel, k+"/") {
				ok = true
			}
		}
		if !ok {
			t.Errorf("package %s is outside the Docker build context (%v)", rel, keep)
		}
	}
	for _, f := range []string{"go.mod", "go.sum"} {
		if !slices.Contains(keep, f) {
			t.Errorf("the Docker build context lacks %s", f)
		}
	}
}
