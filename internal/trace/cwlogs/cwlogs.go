// Package cwlogs reads a message's stage outcomes back from CloudWatch Logs:
// on AWS the functions log them (trace.Log) instead of keeping trace
// objects in S3, so `gateway trace` finds them there.
package cwlogs

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs"

	"github.com/postern/postern/internal/postern"
	"github.com/postern/postern/internal/trace"
)

// FilterAPI is the one CloudWatch Logs call the reader makes.
type FilterAPI interface {
	FilterLogEvents(ctx context.Context, in *cloudwatchlogs.FilterLogEventsInput, opts ...func(*cloudwatchlogs.Options)) (*cloudwatchlogs.FilterLogEventsOutput, error)
}

var _ FilterAPI = (*cloudwatchlogs.Client)(nil)

// maxPages bounds the pages read per log group: a message's outcomes are a
// handful of lines, and a filter that keeps paging through empty pages (as
// FilterLogEvents does over a long window) must end.
const maxPages = 100

// Read returns the stage outcomes trace.Log wrote for id in the given log
// groups (the functions' /aws/lambda/<name> groups), logged at or after
// since (the message's receipt: no line about it can be older), in time
// order. A group that does not exist is an error that names it.
//
// The filter pattern is the message id as a quoted term, which CloudWatch
// Logs (and its stand-in) match on any line that contains it; trace.FromLog
// then keeps only the outcome lines, so other lines naming the id (the
// stages' own logs) are not taken for events.
func Read(ctx context.Context, client FilterAPI, groups []string, id postern.MsgID, since time.Time) ([]trace.Event, error) {
	var out []trace.Event
	for _, g := range groups {
		in := &cloudwatchlogs.FilterLogEventsInput{
			LogGroupName:  aws.String(g),
			FilterPattern: aws.String(`"` + string(id) + `"`),
			StartTime:     aws.Int64(since.UnixMilli()),
		}
		for page := 0; ; page++ {
			if page == maxPages {
				return nil, fmt.Errorf("cwlogs: log group %s: more than %d pages for message %s", g, maxPages, id)
			}
			res, err := client.FilterLogEvents(ctx, in)
			if err != nil {
				return nil, fmt.Errorf("cwlogs: log group %s: %w", g, err)
			}
			for _, e := range res.Events {
				got, ev, ok := trace.FromLog([]byte(aws.ToString(e.Message)))
				if ok && got == id {
					out = append(out, ev)
				}
			}
			if res.NextToken == nil || aws.ToString(res.NextToken) == aws.ToString(in.NextToken) {
				break
			}
			in.NextToken = res.NextToken
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Time.Before(out[j].Time) })
	return out, nil
}
