// Command gateway is Postern's SMTP gateway. With no arguments it runs the
// embedded default: SMTP on 127.0.0.1:2525, data under ./data, and every
// stage in-process. See `gateway help`.
package main

import (
	"context"
	"os"

	"github.com/postern/postern/internal/cli"
)

func main() {
	os.Exit(cli.Main(context.Background(), cli.Env{
		Args: os.Args[1:], Getenv: os.Getenv, Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr,
	}))
}
