package packaging_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// nfpmPackage runs nfpm as scripts/release does, with a stand-in binary
// (what is checked here is the package around it), and returns the file.
func nfpmPackage(t *testing.T, packager string) string {
	t.Helper()
	goBin := needTool(t, "go", "install the Go go.mod names")
	root := repoRoot(t)
	dir := t.TempDir()
	bin := filepath.Join(dir, "postern")
	if err := os.WriteFile(bin, []byte("#!/bin/sh\necho postern 1.0.0\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(goBin, "tool", "-modfile=packaging/tools.mod", "nfpm", "package",
		"--config", "packaging/nfpm.yaml", "--packager", packager, "--target", dir+"/")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "POSTERN_VERSION=1.0.0", "POSTERN_ARCH=amd64", "POSTERN_BINARY="+bin,
		"POSTERN_CONFIG="+filepath.Join(root, "packaging", "postern.yaml"))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("nfpm package --packager %s: %v\n%s", packager, err, out)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "postern*."+packager))
	if len(files) != 1 {
		t.Fatalf("nfpm made %v", files)
	}
	return files[0]
}

// The .rpm lays down what the .deb does, the config as
// %config(noreplace) (a changed default goes to .rpmnew), with the rpm
// scriptlets (their arguments are counts, not dpkg's words).
func TestRPMPackage(t *testing.T) {
	t.Parallel()
	rpm := needTool(t, "rpm", "apt-get install rpm")
	pkg := nfpmPackage(t, "rpm")
	if !strings.HasSuffix(pkg, "postern-1.0.0-1.x86_64.rpm") {
		t.Errorf("rpm named %s, want postern-1.0.0-1.x86_64.rpm", filepath.Base(pkg))
	}
	out, err := exec.Command(rpm, "-qp", "--qf", "[%{FILENAMES} %{FILEFLAGS:fflags} %{FILEMODES:perms}\n]", pkg).CombinedOutput()
	if err != nil {
		t.Fatalf("rpm -qp: %v\n%s", err, out)
	}
	files := map[string]string{}
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(l)
		files[f[0]] = strings.Join(f[1:], " ")
	}
	for path, want := range map[string]string{
		"/usr/bin/postern":                        "-rwxr-xr-x",
		"/etc/postern":                            "drwxr-x---",
		"/etc/postern/postern.yaml":               "cn -rw-r-----", // config, noreplace
		"/usr/lib/systemd/system/postern.service": "-rw-r--r--",
	} {
		if files[path] != want {
			t.Errorf("%s: %q, want %q", path, files[path], want)
		}
	}
	scripts, err := exec.Command(rpm, "-qp", "--scripts", pkg).CombinedOutput()
	if err != nil {
		t.Fatalf("rpm -qp --scripts: %v\n%s", err, scripts)
	}
	for name, file := range map[string]string{
		"preinstall": "pre", "postinstall": "post", "preuninstall": "preun", "postuninstall": "postun",
	} {
		want, err := os.ReadFile(filepath.Join(repoRoot(t), "packaging", "scripts", "rpm", file))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(scripts), name+" scriptlet (using /bin/sh):\n"+string(want)) {
			t.Errorf("the rpm's %s scriptlet is not packaging/scripts/rpm/%s", name, file)
		}
	}
}

// The .deb's control files: the dpkg maintainer scripts, the config as a
// conffile, and no dependency (the binary is static).
func TestDebControl(t *testing.T) {
	t.Parallel()
	dpkgDeb := needTool(t, "dpkg-deb", "apt-get install dpkg")
	pkg := nfpmPackage(t, "deb")
	ctrl := t.TempDir()
	if out, err := exec.Command(dpkgDeb, "--control", pkg, ctrl).CombinedOutput(); err != nil {
		t.Fatalf("dpkg-deb --control: %v\n%s", err, out)
	}
	if b, _ := os.ReadFile(filepath.Join(ctrl, "conffiles")); strings.TrimSpace(string(b)) != "/etc/postern/postern.yaml" {
		t.Errorf("conffiles = %q, want /etc/postern/postern.yaml", b)
	}
	control, _ := os.ReadFile(filepath.Join(ctrl, "control"))
	for _, want := range []string{"Package: postern\n", "Version: 1.0.0-1\n", "Architecture: amd64\n", "Section: mail\n"} {
		if !strings.Contains(string(control), want) {
			t.Errorf("control lacks %q:\n%s", want, control)
		}
	}
	if strings.Contains(string(control), "Depends:") {
		t.Errorf("the static binary needs no Depends:\n%s", control)
	}
	for _, s := range []string{"postinst", "prerm", "postrm"} {
		got, err1 := os.ReadFile(filepath.Join(ctrl, s))
		want, err2 := os.ReadFile(filepath.Join(repoRoot(t), "packaging", "scripts", "deb", s))
		if err1 != nil || err2 != nil || string(got) != string(want) {
			t.Errorf("the .deb's %s is not packaging/scripts/deb/%s (%v, %v)", s, s, err1, err2)
		}
		if out, err := exec.Command("sh", "-n", filepath.Join(ctrl, s)).CombinedOutput(); err != nil {
			t.Errorf("%s: %v\n%s", s, err, out)
		}
	}
}
