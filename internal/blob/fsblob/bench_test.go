package fsblob

import (
	"bytes"
	"fmt"
	"sync/atomic"
	"testing"
)

// BenchmarkPut10KiB measures durable Puts of a typical small message from many
// concurrent writers (SMTP sessions in DATA at once), with one new message
// directory per Put as in production keys. puts/s is the store's share of the
// gateway's messages/s; syncs/put shows how much SyncGroup batches.
func BenchmarkPut10KiB(b *testing.B) {
	body := bytes.Repeat([]byte("0123456789abcdef"), 640) // 10 KiB
	for _, mode := range []SyncMode{SyncEach, SyncGroup} {
		for _, par := range []int{1, 16} { // × GOMAXPROCS writers
			b.Run(fmt.Sprintf("%s/par=%d", mode, par), func(b *testing.B) {
				s := newStore(b, b.TempDir(), mode)
				ctx := b.Context()
				var n atomic.Uint64
				b.SetBytes(int64(len(body)))
				b.ReportAllocs()
				b.SetParallelism(par)
				b.ResetTimer()
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						i := n.Add(1)
						key := fmt.Sprintf("m/%02x/%08d/raw.eml", i%256, i)
						if err := s.Put(ctx, key, bytes.NewReader(body), nil); err != nil {
							b.Error(err)
							return
						}
					}
				})
				b.StopTimer()
				b.ReportMetric(float64(n.Load())/b.Elapsed().Seconds(), "puts/s")
				if s.group != nil && n.Load() > 0 {
					b.ReportMetric(float64(s.group.rounds.Load())/float64(n.Load()), "syncs/put")
				}
			})
		}
	}
}
