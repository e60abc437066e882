// Command dbos runs the load of `weft bench` on DBOS Transact (Go), a
// durable-execution library that keeps its state in PostgreSQL: each of
// -c clients runs a workflow of three sequential steps that return their
// input and waits for its result, -n in all. It is a module of its own so
// that Weft's build never depends on it; docs/performance.md says how it
// was run beside `weft bench`.
//
//	go run . -db postgres://postgres@127.0.0.1:15432/postgres -n 6000 -c 64
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dbos-inc/dbos-transact-golang/dbos"
)

func echo(s string) dbos.Step[string] {
	return func(context.Context) (string, error) { return s, nil }
}

// threeSteps is the workflow: three sequential steps, as weft bench's
// default definition has three sequential echo steps.
func threeSteps(ctx dbos.Context, in string) (string, error) {
	out := in
	for range 3 {
		var err error
		if out, err = dbos.RunAsStep(ctx, echo(out)); err != nil {
			return "", err
		}
	}
	return out, nil
}

func main() {
	db := flag.String("db", "postgres://postgres@127.0.0.1:15432/postgres", "the PostgreSQL database")
	n := flag.Int("n", 2000, "workflows")
	c := flag.Int("c", 64, "concurrent clients")
	warm := flag.Int("warm", 200, "workflows run first and not counted")
	flag.Parse()
	ctx, err := dbos.NewContext(context.Background(), dbos.Config{AppName: "weft-peer-bench", DatabaseURL: *db,
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	if err != nil {
		fail(err)
	}
	dbos.RegisterWorkflow(ctx, threeSteps)
	if err := dbos.Launch(ctx); err != nil {
		fail(err)
	}
	defer dbos.Shutdown(ctx, 10*time.Second)
	run := func(total int) ([]time.Duration, time.Duration) {
		var next atomic.Int64
		lat := make([]time.Duration, total)
		var wg sync.WaitGroup
		begin := time.Now()
		for range *c {
			wg.Go(func() {
				for {
					i := int(next.Add(1)) - 1
					if i >= total {
						return
					}
					t := time.Now()
					h, err := dbos.RunWorkflow(ctx, threeSteps, fmt.Sprintf("in-%d", i))
					if err == nil {
						_, err = h.GetResult()
					}
					if err != nil {
						fail(err)
					}
					lat[i] = time.Since(t)
				}
			})
		}
		wg.Wait()
		return lat, time.Since(begin)
	}
	run(*warm)
	lat, took := run(*n)
	slices.Sort(lat)
	q := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))].Microseconds()) / 1000 }
	fmt.Printf("dbos: %d workflows in %.2fs, %.0f workflows/s, p50 %.2fms p90 %.2fms p99 %.2fms (-c %d)\n",
		*n, took.Seconds(), float64(*n)/took.Seconds(), q(0.5), q(0.9), q(0.99), *c)
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "dbos:", err)
	os.Exit(1)
}
