package parse

import (
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"testing"
	"testing/iotest"
)

// chunky reads from r in pieces of random sizes, so every way a quantum
// and the final fragment can be split across reads is met.
type chunky struct {
	r   io.Reader
	rng *rand.Rand
}

func (c *chunky) Read(p []byte) (int, error) {
	if len(p) > 1 {
		p = p[:1+c.rng.IntN(len(p))]
	}
	return c.r.Read(p)
}

// readAllRandom reads r with buffers of random sizes (some empty) and
// returns what it gave and the error it ended with.
func readAllRandom(r io.Reader, rng *rand.Rand) ([]byte, error) {
	var out []byte
	for {
		p := make([]byte, rng.IntN(5000))
		n, err := r.Read(p)
		out = append(out, p[:n]...)
		if err != nil {
			return out, err
		}
	}
}

// base64Stream gives the bytes and the error base64.NewDecoder gives, for
// every length of input (whole quanta, and final fragments of one, two or
// three characters, the one-character one being an error), however the
// reads below and above it are cut.
func TestBase64StreamMatchesNewDecoder(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(7, 8))
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	for i := range 2000 {
		n := rng.IntN(20000)
		if i%4 == 0 {
			n = rng.IntN(12)
		}
		var b strings.Builder
		for range n {
			b.WriteByte(alphabet[rng.IntN(len(alphabet))])
		}
		in := b.String()
		want, wantErr := io.ReadAll(base64.NewDecoder(base64.RawStdEncoding, strings.NewReader(in)))
		var src io.Reader = &chunky{strings.NewReader(in), rng}
		if i%3 == 0 {
			src = iotest.DataErrReader(src) // data and io.EOF together
		}
		got, gotErr := readAllRandom(&base64Stream{r: src}, rng)
		if errors.Is(gotErr, io.EOF) {
			gotErr = nil // io.ReadAll's way
		}
		if string(got) != string(want) || fmt.Sprint(gotErr) != fmt.Sprint(wantErr) {
			t.Fatalf("%d characters: got %d bytes, %v; NewDecoder %d bytes, %v", n, len(got), gotErr, len(want), wantErr)
		}
	}
}

// A read error of the stream below ends the stream with it.
func TestBase64StreamReadError(t *testing.T) {
	t.Parallel()
	boom := errors.New("store gone")
	r := &base64Stream{r: io.MultiReader(strings.NewReader("QUJD"), iotest.ErrReader(boom))}
	got, err := io.ReadAll(r)
	if string(got) != "ABC" || !errors.Is(err, boom) {
		t.Fatalf("got %q, %v", got, err)
	}
}
