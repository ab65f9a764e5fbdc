package loadgen

import (
	"fmt"
	"io"
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
		if i > 0 && (r.Size != rows[i-1].Size || r.Sessions != rows[i-1].Sessions) {
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
