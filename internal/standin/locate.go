package standin

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
)

// RequireEnv set to "1" turns a missing stand-in from a skip into a
// failure; so does CI=true, which CI services set.
const RequireEnv = "POSTERN_REQUIRE_STANDINS"

// required reports whether a missing stand-in fails the test.
func required() bool {
	return os.Getenv(RequireEnv) == "1" || os.Getenv("CI") == "true"
}

// binary says where a stand-in's start command may be.
type binary struct {
	what   string // for messages: "SQS stand-in (fauxqs)"
	envVar string // names the command explicitly
	cached string // path under the module root where the install script puts it
	onPath string // name looked up on PATH
	hint   string // the install script
}

// locate finds b: $envVar, the install script's location, or PATH. An
// envVar that names nothing is an error rather than a missing install:
// someone asked for that file.
func (b binary) locate() (path string, missing, err error) {
	if p := os.Getenv(b.envVar); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", nil, fmt.Errorf("%s=%s: %w", b.envVar, p, err)
		}
		return p, nil, nil
	}
	if root, err := ModuleRoot(); err == nil {
		p := filepath.Join(root, filepath.FromSlash(b.cached))
		if _, err := os.Stat(p); err == nil {
			return p, nil, nil
		}
	}
	if p, err := exec.LookPath(b.onPath); err == nil {
		return p, nil, nil
	}
	return "", fmt.Errorf("no %s in the module, %s on PATH, or %s set", b.cached, b.onPath, b.envVar), nil
}

// ModuleRoot is the nearest directory at or above the working directory (a
// package's, under go test) that holds go.mod.
func ModuleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory")
		}
		dir = parent
	}
}
