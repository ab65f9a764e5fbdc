// Package crashtest proves that Postern loses no accepted mail: the real
// gateway is SIGKILLed and restarted under load, its store fails or fills
// up, its webhook receiver goes away for a while, and a long run checks
// that goroutines, file descriptors and heap come back to where they were.
//
// The tests take minutes and start the gateway as a child process, so they
// sit behind a build tag:
//
//	go test -tags crash -count=1 -timeout 10m ./internal/crashtest/
//
// POSTERN_CRASH_MESSAGES (default 400) sets how many messages the kill test
// sends; POSTERN_SOAK_DURATION (default 30s) how long the soak runs.
package crashtest
