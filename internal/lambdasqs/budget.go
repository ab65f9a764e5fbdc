package lambdasqs

import (
	"encoding/json"
	"time"
)

// RouteBudget returns an Adapter.Budget for webhook and relay jobs, whose
// body names their route in "route": timeout(route) plus extra, where extra
// covers what the stage does around the call (reading the message, writing
// its outcome). timeout returns <= 0 for a route it does not know; such a
// job, and a body without a route, gets DefaultBudget plus extra.
func RouteBudget(timeout func(route string) time.Duration, extra time.Duration) func(body []byte) time.Duration {
	return func(body []byte) time.Duration {
		var job struct {
			Route string `json:"route"`
		}
		d := time.Duration(0)
		if json.Unmarshal(body, &job) == nil && job.Route != "" {
			d = timeout(job.Route)
		}
		if d <= 0 {
			d = DefaultBudget
		}
		return d + extra
	}
}
