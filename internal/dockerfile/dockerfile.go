// Package dockerfile reads the go build commands out of a Dockerfile, so
// that tests can run them as the image build would without a Docker engine.
package dockerfile

import (
	"fmt"
	"regexp"
	"strings"

	"mvdan.cc/sh/v3/expand"
	"mvdan.cc/sh/v3/syntax"
)

// varRef is a parameter the shell would expand: $NAME or ${NAME...}.
var varRef = regexp.MustCompile(`\$\{?([A-Za-z_][A-Za-z0-9_]*)`)

// GoBuild is one `go build` of a RUN instruction.
type GoBuild struct {
	Env  []string // the NAME=value assignments before go
	Args []string // go's arguments, from "build" on
	Out  string   // the -o path, "" when there is none
}

// GoBuilds returns the go build commands of df's RUN instructions, with
// continued lines joined and each RUN parsed, expanded and split as the
// image's shell would (mvdan.cc/sh; a list such as `a && b` gives each
// command): ${NAME} comes from args, and a name args lacks is an error, so
// a Dockerfile cannot use a build argument the caller did not think of.
// RUN options (--mount=...) are skipped.
func GoBuilds(df string, args map[string]string) ([]GoBuild, error) {
	// IFS, PWD and the like read as unset: the shell's defaults.
	cfg := &expand.Config{Env: expand.FuncEnviron(func(name string) string { return args[name] })}
	var out []GoBuild
	for _, line := range strings.Split(strings.ReplaceAll(df, "\\\n", " "), "\n") {
		rest, ok := strings.CutPrefix(strings.TrimSpace(line), "RUN ")
		if !ok {
			continue
		}
		for rest = strings.TrimSpace(rest); strings.HasPrefix(rest, "--"); {
			_, rest, _ = strings.Cut(rest, " ")
			rest = strings.TrimSpace(rest)
		}
		for _, m := range varRef.FindAllStringSubmatch(rest, -1) {
			if _, ok := args[m[1]]; !ok {
				return nil, fmt.Errorf("RUN %s: uses $%s, which is not given", rest, m[1])
			}
		}
		file, err := syntax.NewParser().Parse(strings.NewReader(rest), "RUN")
		if err != nil {
			return nil, fmt.Errorf("RUN %s: %w", rest, err)
		}
		var werr error
		syntax.Walk(file, func(n syntax.Node) bool {
			call, ok := n.(*syntax.CallExpr)
			if !ok || werr != nil {
				return werr == nil
			}
			b, ok, err := goBuild(cfg, call)
			if err != nil {
				werr = fmt.Errorf("RUN %s: %w", rest, err)
			} else if ok {
				out = append(out, b)
			}
			return true
		})
		if werr != nil {
			return nil, werr
		}
	}
	return out, nil
}

// goBuild reads one simple command; ok says it is a go build.
func goBuild(cfg *expand.Config, call *syntax.CallExpr) (b GoBuild, ok bool, err error) {
	f, err := expand.Fields(cfg, call.Args...)
	if err != nil || len(f) < 2 || f[0] != "go" || f[1] != "build" {
		return GoBuild{}, false, err
	}
	for _, a := range call.Assigns {
		v := ""
		if a.Value != nil {
			if v, err = expand.Literal(cfg, a.Value); err != nil {
				return GoBuild{}, false, err
			}
		}
		b.Env = append(b.Env, a.Name.Value+"="+v)
	}
	b.Args = f[1:]
	for i, a := range b.Args {
		if a == "-o" && i+1 < len(b.Args) {
			b.Out = b.Args[i+1]
		}
	}
	return b, true, nil
}
