// Command fn is a Lambda function for lambdart's tests. The event's "do"
// picks its behaviour; FN_INIT_ERROR makes it fail before taking any.
package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-lambda-go/lambdacontext"
)

type event struct {
	Do   string `json:"do"`
	Text string `json:"text"`
}

type reply struct {
	Text        string            `json:"text"`
	RequestID   string            `json:"request_id"`
	FunctionARN string            `json:"function_arn"`
	DeadlineMs  int64             `json:"deadline_ms"`
	PID         int               `json:"pid"`
	Env         map[string]string `json:"env"`
}

// refusal is an error with a type name of its own, to see it reported as
// the errorType.
type refusal struct{ why string }

func (r *refusal) Error() string { return r.why }

func handle(ctx context.Context, ev event) (*reply, error) {
	switch ev.Do {
	case "fail":
		return nil, &refusal{ev.Text}
	case "panic":
		panic(ev.Text)
	case "exit":
		os.Exit(3)
	case "hang":
		time.Sleep(time.Hour) // ignores its deadline, as a stuck function would
	case "big":
		return &reply{Text: strings.Repeat("x", 7<<20)}, nil
	}
	lc, _ := lambdacontext.FromContext(ctx)
	dl, _ := ctx.Deadline()
	env := map[string]string{}
	for _, k := range []string{"AWS_LAMBDA_FUNCTION_NAME", "_HANDLER", "AWS_REGION", "AWS_ACCESS_KEY_ID", "LAMBDA_TASK_ROOT", "FN_EXTRA", "HOME"} {
		env[k] = os.Getenv(k)
	}
	return &reply{Text: ev.Text, RequestID: lc.AwsRequestID, FunctionARN: lc.InvokedFunctionArn,
		DeadlineMs: dl.UnixMilli(), PID: os.Getpid(), Env: env}, nil
}

func main() {
	if msg := os.Getenv("FN_INIT_ERROR"); msg != "" {
		// What a runtime does when it cannot start: report, then exit.
		body := fmt.Sprintf(`{"errorMessage":%q,"errorType":"Fn.InitFailed"}`, msg)
		resp, err := http.Post("http://"+os.Getenv("AWS_LAMBDA_RUNTIME_API")+"/2018-06-01/runtime/init/error", "application/json", strings.NewReader(body))
		if err == nil {
			_ = resp.Body.Close()
		}
		os.Exit(1)
	}
	lambda.Start(handle)
}
