// Package version says which build of Postern is running: the release
// version, the commit and the build date, set by scripts/release with
// -ldflags -X; a plain `go build` or `go run` says "dev".
package version

import (
	"fmt"
	"log/slog"
	"runtime"
)

// Set at link time by scripts/release:
//
//	-X github.com/postern/postern/internal/version.Version=1.2.3
//	-X github.com/postern/postern/internal/version.Commit=<git commit>
//	-X github.com/postern/postern/internal/version.Date=<RFC 3339 UTC>
//
// They are variables only because -X can set nothing else; nothing assigns
// them at run time.
var (
	Version = "dev"
	Commit  = "unknown"
	Date    = "unknown"
)

// String is the one line `gateway version` prints: version, commit, build
// date, Go version and platform.
func String() string {
	return fmt.Sprintf("postern %s (commit %s, built %s, %s %s/%s)",
		Version, Commit, Date, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}

// Attrs are the build's log attributes, for the startup line.
func Attrs() []any {
	return []any{slog.String("version", Version), slog.String("commit", Commit), slog.String("build_date", Date)}
}
