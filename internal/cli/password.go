package cli

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"golang.org/x/term"
)

// readPassword returns the password for hash-password, or an exit code. On
// a terminal it prompts on stderr, reads without echo (nobody behind the
// operator, no scrollback, no screen recording sees it) and asks twice, as
// a typo there would make an identity that can never log in. From a pipe
// or file it reads one line, as scripts expect.
func readPassword(e Env) (string, int) {
	if f, ok := e.Stdin.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		return readPasswordTerminal(e, int(f.Fd()))
	}
	line, err := bufio.NewReader(e.Stdin).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		fmt.Fprintln(e.Stderr, "hash-password: read stdin:", err)
		return "", 1
	}
	pw := strings.TrimRight(line, "\r\n")
	if pw == "" {
		fmt.Fprintln(e.Stderr, "hash-password: empty password; type it on stdin, e.g. echo -n 's3cret' | gateway hash-password")
		return "", 2
	}
	return pw, 0
}

func readPasswordTerminal(e Env, fd int) (string, int) {
	// term.ReadPassword restores echo when it returns, not when Ctrl-C
	// kills the process: do it here, or the operator's shell stays blind.
	if old, err := term.GetState(fd); err == nil {
		sig := make(chan os.Signal, 1)
		done := make(chan struct{})
		signal.Notify(sig, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
		defer func() { signal.Stop(sig); close(done) }()
		go func() {
			select {
			case <-sig:
				term.Restore(fd, old)
				fmt.Fprintln(e.Stderr)
				os.Exit(130)
			case <-done:
			}
		}()
	}
	read := func(prompt string) (string, error) {
		fmt.Fprint(e.Stderr, prompt)
		b, err := term.ReadPassword(fd)
		fmt.Fprintln(e.Stderr) // the Enter the terminal did not echo
		return string(b), err
	}
	pw, err := read("Password: ")
	if err != nil {
		fmt.Fprintln(e.Stderr, "hash-password: read terminal:", err)
		return "", 1
	}
	if pw == "" {
		fmt.Fprintln(e.Stderr, "hash-password: empty password")
		return "", 2
	}
	again, err := read("Again: ")
	if err != nil {
		fmt.Fprintln(e.Stderr, "hash-password: read terminal:", err)
		return "", 1
	}
	if again != pw {
		fmt.Fprintln(e.Stderr, "hash-password: the passwords do not match; nothing was hashed, run it again")
		return "", 1
	}
	return pw, 0
}
