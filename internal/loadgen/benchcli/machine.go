package benchcli

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/postern/postern/internal/loadgen"
)

// writeMachine writes the report's preamble: when, on what, how.
func writeMachine(w io.Writer, cfg loadgen.BenchConfig, tmp string, start time.Time) {
	if tmp == "" {
		tmp = os.TempDir()
	}
	fmt.Fprintf(w, "Date: %s\n\n", start.UTC().Format("2006-01-02 15:04 MST"))
	fmt.Fprintf(w, "Machine: %s, %d CPUs, %s RAM, Linux %s, %s\n\n", cpuModel(), runtime.NumCPU(), memTotal(),
		strings.TrimSpace(readFile("/proc/sys/kernel/osrelease")), runtime.Version())
	fmt.Fprintf(w, "Data on: %s\n\n", mountOf(tmp))
	var sizes []string
	for _, s := range cfg.Sizes {
		sizes = append(sizes, loadgen.FormatSize(s))
	}
	body := "one us-ascii text part"
	if cfg.Body == loadgen.BodyPDF {
		body = "a line of text and a base64 PDF attachment (a scanner's mail)"
	}
	fmt.Fprintf(w, "Load: Go client (internal/loadgen), one connection per session reused for every message, sizes %s, "+
		"sessions %v, %s measured after %s warm-up, each server a fresh process on 127.0.0.1 with an empty data directory. "+
		"Messages: %s.\n\n",
		strings.Join(sizes, " "), cfg.Sessions, cfg.Duration, cfg.Warmup, body)
}

func readFile(p string) string {
	b, _ := os.ReadFile(p)
	return string(b)
}

func cpuModel() string {
	for line := range strings.Lines(readFile("/proc/cpuinfo")) {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return runtime.GOARCH
}

func memTotal() string {
	for line := range strings.Lines(readFile("/proc/meminfo")) {
		if rest, ok := strings.CutPrefix(line, "MemTotal:"); ok {
			var kb int64
			fmt.Sscanf(strings.TrimSpace(rest), "%d", &kb)
			return fmt.Sprintf("%.0f GiB", float64(kb)/(1<<20))
		}
	}
	return "?"
}

// mountOf names the device, filesystem type and options of dir's mount.
func mountOf(dir string) string {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "?"
	}
	if r, err := filepath.EvalSymlinks(abs); err == nil {
		abs = r
	}
	best := ""
	desc := "?"
	for line := range strings.Lines(readFile("/proc/mounts")) {
		f := strings.Fields(line)
		if len(f) < 4 {
			continue
		}
		mp := f[1]
		if (abs == mp || strings.HasPrefix(abs, strings.TrimSuffix(mp, "/")+"/")) && len(mp) >= len(best) {
			best = mp
			desc = fmt.Sprintf("%s (%s on %s, %s)", dir, f[2], f[0], f[3])
		}
	}
	return desc
}
