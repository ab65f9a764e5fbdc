package loadgen

import (
	"strings"
	"testing"
	"time"
)

// row makes a measured row: rate msgs/s over one second, cpu CPU seconds
// per 1,000 messages, and pipeline CPU per 1,000 when pipeline > 0.
func row(target string, run int, rate, cpu, pipeline float64) Row {
	n := int(rate)
	r := Row{Target: target, Size: 1 << 20, Sessions: 10, Run: run, Runs: 3,
		Result: &Result{Accepted: n, Elapsed: time.Second},
		CPU:    time.Duration(cpu * float64(n) / 1000 * float64(time.Second))}
	if pipeline > 0 {
		r.Drained = int64(n)
		r.DrainCPU = time.Duration(pipeline * float64(n) / 1000 * float64(time.Second))
	}
	return r
}

func TestWriteSpreadPairsEachRunWithItsBaseline(t *testing.T) {
	rows := []Row{
		// Run 1: the machine is fast; run 2: everything is slower; the
		// ratios within each run stay near each other.
		row("gateway", 1, 200, 8, 16), row("go-fsync", 1, 200, 8, 0),
		row("gateway", 2, 100, 16, 40), row("go-fsync", 2, 50, 16, 0),
		row("gateway", 3, 300, 6, 12), row("go-fsync", 3, 150, 4, 0),
	}
	var b strings.Builder
	if err := WriteSpread(&b, rows, "go-fsync"); err != nil {
		t.Fatal(err)
	}
	got := b.String()
	// msgs/s ratios 1, 2, 2; CPU 1, 1, 1.5; pipeline 2, 2.5, 3.
	want := "| 1MiB | 10 | gateway | 3 | 2.00x (1.00x to 2.00x) | 1.00x (1.00x to 1.50x) | 2.50x (2.00x to 3.00x) |"
	if !strings.Contains(got, want) {
		t.Fatalf("spread table:\n%s\nwant the line\n%s", got, want)
	}
	if strings.Contains(got, "| go-fsync |") {
		t.Errorf("the baseline has a line of its own:\n%s", got)
	}
	var one strings.Builder
	if err := WriteSpread(&one, rows[:2], "go-fsync"); err != nil || one.Len() != 0 {
		t.Errorf("one run: %q, %v; want nothing", one.String(), err)
	}
	var tbl strings.Builder
	if err := WriteTable(&tbl, rows, "go-fsync"); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(tbl.String(), "run 2 of 3") {
		t.Errorf("the table does not say which run a row is:\n%s", tbl.String())
	}
}

func TestSpreadMedian(t *testing.T) {
	for _, c := range []struct {
		xs   []float64
		want string
	}{
		{nil, "-"},
		{[]float64{3}, "3.00x (3.00x to 3.00x)"},
		{[]float64{4, 1}, "2.50x (1.00x to 4.00x)"},
		{[]float64{5, 1, 2}, "2.00x (1.00x to 5.00x)"},
	} {
		if got := spread(c.xs); got != c.want {
			t.Errorf("spread(%v) = %q, want %q", c.xs, got, c.want)
		}
	}
}
