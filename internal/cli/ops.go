package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/postern/postern/internal/app"
	"github.com/postern/postern/internal/config"
	"github.com/postern/postern/internal/postern"
	"github.com/postern/postern/internal/trace"
)

// opsFlags parses the flags every operations command shares.
func opsFlags(e Env, name, usage string, extra func(*flag.FlagSet)) (*config.Config, *flag.FlagSet, int) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(e.Stderr)
	path := fs.String("config", e.Getenv("POSTERN_CONFIG"), "configuration file (YAML)")
	if extra != nil {
		extra(fs)
	}
	fs.Usage = func() { fmt.Fprintln(e.Stderr, usage); fs.PrintDefaults() }
	if err := fs.Parse(e.Args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, nil, 0
		}
		return nil, nil, 2
	}
	cfg, err := config.Load(*path, e.Getenv)
	if err != nil {
		fmt.Fprintln(e.Stderr, err)
		return nil, nil, 2
	}
	return cfg, fs, -1
}

// adminCall asks a running local gateway; ok is false when none answers,
// so the caller can act on the files itself. A POST carries in (or {}) as
// JSON, the only kind of body the admin API takes for a change. The token
// is admin.token, or the one the gateway generated into data_dir.
func adminCall(ctx context.Context, cfg *config.Config, method, path string, in, out any) (ok bool, err error) {
	if cfg.Backend.Type != "local" || cfg.Admin.Addr == "" {
		return false, nil
	}
	host, port, err := net.SplitHostPort(cfg.Admin.Addr)
	if err != nil {
		return false, err
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	var body io.Reader
	if method != http.MethodGet {
		if in == nil {
			in = struct{}{}
		}
		b, err := json.Marshal(in)
		if err != nil {
			return false, err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://"+net.JoinHostPort(host, port)+path, body)
	if err != nil {
		return false, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	// No token file means no gateway has started on this data_dir: if one
	// answers all the same, its 401 below says what to do.
	tok, err := app.AdminToken(cfg)
	switch {
	case err == nil:
		req.Header.Set("Authorization", "Bearer "+tok)
	case !errors.Is(err, fs.ErrNotExist):
		return false, fmt.Errorf("%w (the commands that ask the gateway need its admin token: run them as the gateway's user, or set admin.token)", err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		if errors.Is(err, syscall.ECONNREFUSED) {
			return false, nil
		}
		return false, err
	}
	defer resp.Body.Close()
	got, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode == http.StatusUnauthorized {
		return true, fmt.Errorf("gateway answered %s: its admin token is neither admin.token nor in %s; use the gateway's own configuration (-config) or data_dir", resp.Status, app.AdminTokenPath(cfg))
	}
	if resp.StatusCode != http.StatusOK {
		return true, fmt.Errorf("gateway answered %s: %s", resp.Status, strings.TrimSpace(string(got)))
	}
	return true, json.Unmarshal(got, out)
}

func quietLog() *slog.Logger { return slog.New(slog.DiscardHandler) }

// idCommand parses the flags of a command that takes one message id.
func idCommand(e Env, name, usage string, extra func(*flag.FlagSet)) (*config.Config, postern.MsgID, int) {
	cfg, fs, code := opsFlags(e, name, usage, extra)
	if cfg == nil {
		return nil, "", max(code, 0)
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return nil, "", 2
	}
	id, err := postern.ParseMsgID(fs.Arg(0))
	if err != nil {
		fmt.Fprintf(e.Stderr, "%s: %v\n", name, err)
		return nil, "", 2
	}
	return cfg, id, 0
}

func traceCmd(ctx context.Context, e Env) int {
	cfg, id, code := idCommand(e, "trace", "Usage: gateway trace [-config FILE] MESSAGE-ID\n\nPrints the message's timeline: received, parsed, each delivery attempt with its status, retries, failures, DSN.", nil)
	if cfg == nil {
		return code
	}
	evs, err := app.Trace(ctx, cfg, quietLog(), id)
	if err != nil {
		fmt.Fprintln(e.Stderr, "trace:", err)
		return 1
	}
	printTrace(e.Stdout, evs)
	return 0
}

func printTrace(w io.Writer, evs []trace.Event) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TIME\tSTAGE\tEVENT\tROUTE\tATTEMPT\tSTATUS\tMS\tDETAIL")
	for _, ev := range evs {
		status := ""
		if ev.Status != 0 {
			status = fmt.Sprint(ev.Status)
		}
		attempt := ""
		if ev.Attempt != 0 {
			attempt = fmt.Sprint(ev.Attempt)
		}
		// Every text field is escaped: on AWS the events are read back
		// from log lines, and details quote what senders and remote
		// servers wrote.
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\n", ev.Time.UTC().Format(time.RFC3339Nano), termSafe(ev.Stage), termSafe(ev.Event), termSafe(ev.Route), attempt, status, ev.LatencyMS, termSafe(ev.Detail))
	}
	tw.Flush()
}

func replayCmd(ctx context.Context, e Env) int {
	var routeName string
	cfg, id, code := idCommand(e, "replay", "Usage: gateway replay [-config FILE] [-route NAME] MESSAGE-ID\n\nQueues a stored message again: parsed and routed anew, or straight to one route. Deliveries keep their webhook-id.",
		func(fs *flag.FlagSet) { fs.StringVar(&routeName, "route", "", "deliver to this route only") })
	if cfg == nil {
		return code
	}
	var res map[string]string
	ok, err := adminCall(ctx, cfg, http.MethodPost, "/v1/replay/"+string(id), app.ReplayRequest{Route: routeName}, &res)
	msg := res["result"]
	if err == nil && !ok {
		msg, err = app.Replay(ctx, cfg, quietLog(), id, routeName)
	}
	if err != nil {
		fmt.Fprintln(e.Stderr, "replay:", err)
		return 1
	}
	fmt.Fprintf(e.Stdout, "%s: %s\n", id, msg)
	return 0
}

func redriveCmd(ctx context.Context, e Env) int {
	cfg, fs, code := opsFlags(e, "redrive", "Usage: gateway redrive [-config FILE] QUEUE\n\nMoves the dead-lettered jobs of QUEUE (inbound, webhook, relay, dsn) back onto it.", nil)
	if cfg == nil {
		return max(code, 0)
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return 2
	}
	var res map[string]int
	ok, err := adminCall(ctx, cfg, http.MethodPost, "/v1/redrive/"+url.PathEscape(fs.Arg(0)), nil, &res)
	n := res["moved"]
	if err == nil && !ok {
		n, err = app.Redrive(ctx, cfg, quietLog(), fs.Arg(0))
	}
	if err != nil {
		fmt.Fprintln(e.Stderr, "redrive:", err)
		return 1
	}
	fmt.Fprintf(e.Stdout, "moved %d job(s) back to %s\n", n, fs.Arg(0))
	return 0
}

func devicesCmd(ctx context.Context, e Env) int {
	cfg, _, code := opsFlags(e, "devices", "Usage: gateway devices [-config FILE]\n\nLists each identity seen since the gateway started: last seen, messages today, failures, TLS version and AUTH mechanism (find devices still on TLS 1.0 or plaintext).", nil)
	if cfg == nil {
		return max(code, 0)
	}
	var devs []app.Device
	ok, err := adminCall(ctx, cfg, http.MethodGet, "/v1/devices", nil, &devs)
	if err == nil && !ok {
		err = errors.New("no running gateway answered on admin.addr; devices are tracked by the running gateway")
	}
	if err != nil {
		fmt.Fprintln(e.Stderr, "devices:", err)
		return 1
	}
	tw := tabwriter.NewWriter(e.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "IDENTITY\tLAST SEEN\tLAST IP\tTODAY\tTOTAL\tAUTH FAILURES\tRATE LIMITED\tTLS\tAUTH")
	for _, d := range devs {
		tlsv, auth := d.TLSVersion, d.AuthMech
		if tlsv == "" {
			tlsv = "plaintext"
		}
		if auth == "" {
			auth = "network"
		}
		seen := "-"
		if !d.LastSeen.IsZero() {
			seen = d.LastSeen.UTC().Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%d\t%d\t%s\t%s\n", d.Identity, seen, d.LastClientIP, d.MessagesToday, d.Messages, d.AuthFailures, d.RateLimited, tlsv, auth)
	}
	tw.Flush()
	return 0
}
