package loadgen

import (
	"fmt"
	"io"
	"slices"
	"strings"
)

// WriteTable writes rows as a Markdown table, one line per target per cell,
// with a blank separator row between cells. baseline names the target the
// ratio column compares with.
func WriteTable(w io.Writer, rows []Row, baseline string) error {
	var b strings.Builder
	fmt.Fprintf(&b, "| size | sessions | server | msgs/s | MB/s | p50 ms | p99 ms | CPU s/1k msgs | x %s | peak RSS MiB | notes |\n", baseline)
	b.WriteString("|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---|\n")
	for i, r := range rows {
		if i > 0 && (r.Size != rows[i-1].Size || r.Sessions != rows[i-1].Sessions || r.Run != rows[i-1].Run) {
			b.WriteString("| | | | | | | | | | | |\n")
		}
		fmt.Fprintf(&b, "| %s | %d | %s | ", FormatSize(r.Size), r.Sessions, r.Target)
		if r.Result == nil {
			fmt.Fprintf(&b, "- | - | - | - | - | - | - | %s |\n", cellText(r.Err))
			continue
		}
		res := r.Result
		fmt.Fprintf(&b, "%.0f | %.1f | %.2f | %.2f | %.3f | %s | %s | %s |\n",
			res.Rate(), res.MBps(), ms(res.Percentile(50)), ms(res.Percentile(99)), r.CPUPer1000(),
			ratio(r.Ratio), rss(r.PeakRSS), cellText(notes(r)))
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func ratio(x float64) string {
	if x == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2fx", x)
}

func rss(n int64) string {
	if n == 0 {
		return "-"
	}
	return fmt.Sprintf("%.0f", float64(n)/(1<<20))
}

// notes says what the numeric columns cannot: refusals, errors, the
// pipeline's cost, smtp-source's opinion.
func notes(r Row) string {
	var n []string
	if r.Runs > 1 {
		n = append(n, fmt.Sprintf("run %d of %d", r.Run, r.Runs))
	}
	if r.Result.Refused > 0 {
		n = append(n, fmt.Sprintf("refused %d %v", r.Result.Refused, r.Result.Codes))
	}
	if r.Result.Errors > 0 {
		n = append(n, fmt.Sprintf("conn errors %d (%s)", r.Result.Errors, r.Result.FirstErr))
	}
	if r.Drained > 0 {
		n = append(n, fmt.Sprintf("with pipeline %.3f CPU s/1k", r.DrainCPUPer1000()))
	}
	if a := r.AllocatedPerMsg(); a > 0 {
		n = append(n, fmt.Sprintf("%.2f MB allocated/msg", a/1e6))
	}
	if r.SourceRate > 0 {
		n = append(n, fmt.Sprintf("smtp-source %.0f msgs/s", r.SourceRate))
	}
	if r.Err != "" {
		n = append(n, r.Err)
	}
	return strings.Join(n, "; ")
}

// cellText keeps a note from breaking the table.
func cellText(s string) string {
	return strings.NewReplacer("|", "/", "\n", " ").Replace(s)
}

// WriteSpread writes, for each cell measured in more than one run and each
// target but baseline, the median and range over the runs of three ratios
// to the baseline measured in the same run: messages/s, the front door's
// CPU per message, and (for a target with a pipeline) the whole pipeline's
// CPU per message against the baseline's. One run of a cell moves by tens
// of percent on a shared machine; a ratio taken within a run and its median
// over runs moves much less. Nothing is written when no cell has two runs.
func WriteSpread(w io.Writer, rows []Row, baseline string) error {
	type key struct {
		size, sessions int
		target         string
	}
	type ratios struct{ rate, cpu, pipeline []float64 }
	base := map[[3]int]*Row{} // size, sessions, run
	for i := range rows {
		if r := &rows[i]; r.Target == baseline && r.Result != nil {
			base[[3]int{r.Size, r.Sessions, r.Run}] = r
		}
	}
	var order []key
	got := map[key]*ratios{}
	for i := range rows {
		r := &rows[i]
		b := base[[3]int{r.Size, r.Sessions, r.Run}]
		if r.Target == baseline || r.Result == nil || b == nil {
			continue
		}
		k := key{r.Size, r.Sessions, r.Target}
		x := got[k]
		if x == nil {
			x = &ratios{}
			got[k] = x
			order = append(order, k)
		}
		if br := b.Result.Rate(); br > 0 {
			x.rate = append(x.rate, r.Result.Rate()/br)
		}
		if bc := b.CPUPer1000(); bc > 0 {
			x.cpu = append(x.cpu, r.CPUPer1000()/bc)
			if r.Drained > 0 {
				x.pipeline = append(x.pipeline, r.DrainCPUPer1000()/bc)
			}
		}
	}
	var b strings.Builder
	for _, k := range order {
		x := got[k]
		if len(x.rate) < 2 {
			continue
		}
		if b.Len() == 0 {
			fmt.Fprintf(&b, "| size | sessions | server | runs | msgs/s / %[1]s | CPU per msg / %[1]s | with pipeline, CPU per msg / %[1]s |\n", baseline)
			b.WriteString("|---:|---:|---|---:|---|---|---|\n")
		}
		fmt.Fprintf(&b, "| %s | %d | %s | %d | %s | %s | %s |\n", FormatSize(k.size), k.sessions, k.target, len(x.rate),
			spread(x.rate), spread(x.cpu), spread(x.pipeline))
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// spread is "median (min to max)" of xs, or "-" for none.
func spread(xs []float64) string {
	if len(xs) == 0 {
		return "-"
	}
	s := slices.Sorted(slices.Values(xs))
	med := s[len(s)/2]
	if len(s)%2 == 0 {
		med = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return fmt.Sprintf("%.2fx (%.2fx to %.2fx)", med, s[0], s[len(s)-1])
}
