package dockerfile

import (
	"reflect"
	"strings"
	"testing"
)

func TestGoBuilds(t *testing.T) {
	t.Parallel()
	df := `FROM golang AS build
ARG TARGETARCH
RUN --mount=type=cache,target=/root/.cache go mod download
RUN CGO_ENABLED=0 GOARCH=${TARGETARCH} go build -trimpath \
    -ldflags="-s -w -X 'main.v=1 2'" -o /out/gateway ./gateway
RUN echo go build is not run here
RUN mkdir -p /out/data && CGO_ENABLED=0 go build -o /out/hc ./infra/healthcheck
RUN go vet ./...
`
	got, err := GoBuilds(df, map[string]string{"TARGETARCH": "arm64"})
	if err != nil {
		t.Fatal(err)
	}
	want := []GoBuild{{
		Env:  []string{"CGO_ENABLED=0", "GOARCH=arm64"},
		Args: []string{"build", "-trimpath", "-ldflags=-s -w -X 'main.v=1 2'", "-o", "/out/gateway", "./gateway"},
		Out:  "/out/gateway",
	}, {
		Env:  []string{"CGO_ENABLED=0"},
		Args: []string{"build", "-o", "/out/hc", "./infra/healthcheck"},
		Out:  "/out/hc",
	}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("GoBuilds = %+v\nwant %+v", got, want)
	}
}

// A build argument the caller does not give is an error, not an empty word.
func TestGoBuildsUnknownArg(t *testing.T) {
	t.Parallel()
	_, err := GoBuilds("RUN GOOS=${TARGETOS} go build ./x\n", map[string]string{})
	if err == nil || !strings.Contains(err.Error(), "TARGETOS") {
		t.Errorf("err = %v, want one naming TARGETOS", err)
	}
}
