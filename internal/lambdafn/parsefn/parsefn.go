// Package parsefn builds the parse stage from the configuration, for the
// parse function (functions/parse) and the local process alike.
package parsefn

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/postern/postern/internal/config"
	"github.com/postern/postern/internal/dnsresolve"
	"github.com/postern/postern/internal/lambdafn"
	"github.com/postern/postern/internal/parse"
	"github.com/postern/postern/internal/route"
)

// Budget is the most one parse job takes: a GET of the raw message, the
// parse, the PUTs of parsed.json and the attachments, and one send per
// route (20 s, since nothing there waits on another party's timeout), plus
// the sender checks, which wait on DNS no longer than parse.DefaultAuthTimeout.
const Budget = 20*time.Second + parse.DefaultAuthTimeout

// New builds the parse stage over table (the route table the gateway
// checks recipients against too). When some identity is an internet one,
// it builds the DNS resolver the sender checks ask (dns.servers,
// dns.timeout): one per process, or per cold start on Lambda, so its cache
// serves every message.
func New(d *lambdafn.Deps, table *route.Table) (*parse.Handler, error) {
	q := d.Queues
	opts, err := authOptions(d.Config)
	if err != nil {
		return nil, err
	}
	cfg := parse.Config{
		InlineAttachmentMax: d.Config.Delivery.InlineAttachmentBytes,
		// On one machine parsed.json is read back from the page cache;
		// on AWS a small one rides in the job, one S3 GET fewer.
		ReferParsed: d.Config.Backend.Type != "aws",
	}
	return parse.New(cfg, d.Store, table,
		parse.Outbox{Webhook: q[lambdafn.QueueWebhook], Relay: q[lambdafn.QueueRelay], DSN: q[lambdafn.QueueDSN]}, d.Log, opts...), nil
}

// authOptions sets up the sender checks; with no internet identity there
// is nothing to check and no resolver is made.
func authOptions(cfg *config.Config) ([]parse.Option, error) {
	if !slices.ContainsFunc(cfg.Identities, func(id config.Identity) bool { return id.Internet }) {
		return nil, nil
	}
	r, err := Resolver(cfg)
	if err != nil {
		return nil, err
	}
	return []parse.Option{parse.WithAuth(parse.Auth{
		Resolver:   r,
		Internet:   lambdafn.Internet(cfg),
		AuthServID: cfg.Hostname,
	})}, nil
}

// Resolver builds the DNS resolver the sender checks ask (dns.servers,
// dns.timeout): the parse stage's, and the gateway's for listeners that
// refuse DMARC failures at the end of DATA. Build one per process, or per
// cold start on Lambda, so its cache serves every message.
func Resolver(cfg *config.Config) (*dnsresolve.Resolver, error) {
	r, err := dnsresolve.New(dnsresolve.Config{Servers: cfg.DNS.Servers, Timeout: cfg.DNS.Timeout.D()})
	if err != nil {
		return nil, fmt.Errorf("config: dns: %w", err)
	}
	return r, nil
}

// Build is the parse function's lambdafn.Build.
func Build(_ context.Context, d *lambdafn.Deps) (lambdafn.Stage, error) {
	table, err := lambdafn.RouteTable(d.Config)
	if err != nil {
		return lambdafn.Stage{}, err
	}
	h, err := New(d, table)
	if err != nil {
		return lambdafn.Stage{}, err
	}
	return lambdafn.Stage{Handler: h, Budget: func([]byte) time.Duration { return Budget }}, nil
}
