package bench

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// pipeline moves the events of n workflows of steps steps through a bare
// JetStream pipeline, with c clients each starting a workflow and waiting
// for its last event before the next, and returns workflows per second.
// It is the reference of the same shape as Weft with nothing of Weft's
// own: no state, no checks, no API. One consumer plays the orchestrator
// (it takes a start or a result, acks it and publishes the next command,
// or the closing event after the last result), another the executor (it
// takes a command, acks it and publishes its result). Every event is a
// synchronous publish of size bytes into one file-stored stream, as many
// events as Weft records for the workflow (2 + 2*steps).
func pipeline(ctx context.Context, nc *nats.Conn, n, steps, size, c int) (float64, error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return 0, err
	}
	name := fmt.Sprintf("WEFT_BENCH_PIPE_%d", time.Now().UnixNano()%1e9)
	pfx := "weft.benchpipe." + name + "."
	stream, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: name, Subjects: []string{pfx + ">"}, Storage: jetstream.FileStorage})
	if err != nil {
		return 0, fmt.Errorf("bench: pipeline stream: %w", err)
	}
	defer func() { _ = js.DeleteStream(context.WithoutCancel(ctx), name) }()
	payload := make([]byte, max(size, 1))
	// Ends the stages' workers when the run is over.
	stop, cancel := context.WithCancel(ctx)
	defer cancel()

	var (
		mu      sync.Mutex
		waiting = map[int]chan struct{}{}
		errOnce sync.Once
		failed  = make(chan error, 1)
	)
	fail := func(err error) { errOnce.Do(func() { failed <- err }) }
	// stage consumes subjects pfx+role+".<wf>.<hop>" and hands each message
	// to c workers, which ack it and publish what follows.
	stage := func(role string, next func(wf, hop int) string) (jetstream.ConsumeContext, error) {
		cons, err := stream.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{Durable: role, FilterSubject: pfx + role + ".>", AckPolicy: jetstream.AckExplicitPolicy})
		if err != nil {
			return nil, err
		}
		work := make(chan jetstream.Msg, c)
		for range c {
			go func() {
				for {
					var m jetstream.Msg
					select {
					case m = <-work:
					case <-stop.Done():
						return
					}
					parts := strings.Split(m.Subject(), ".")
					wf, _ := strconv.Atoi(parts[len(parts)-2])
					hop, _ := strconv.Atoi(parts[len(parts)-1])
					if _, err := js.Publish(ctx, next(wf, hop), payload); err != nil {
						fail(err)
						return
					}
					_ = m.Ack()
					if hop == 2*steps { // the closing event is stored: done
						mu.Lock()
						ch := waiting[wf]
						delete(waiting, wf)
						mu.Unlock()
						if ch != nil { // nil: a redelivery of one already done
							close(ch)
						}
					}
				}
			}()
		}
		cc, err := cons.Consume(func(m jetstream.Msg) {
			select {
			case work <- m:
			case <-stop.Done():
			}
		}, jetstream.PullMaxMessages(256))
		if err != nil {
			return nil, err
		}
		return cc, nil
	}
	// The orchestrator gets hop 0 (the start) and odd hops (results): it
	// publishes the next command, or the closing event after the last result.
	orch, err := stage("a", func(wf, hop int) string {
		if hop == 2*steps {
			return pfx + "done." + strconv.Itoa(wf)
		}
		return pfx + "b." + strconv.Itoa(wf) + "." + strconv.Itoa(hop+1)
	})
	if err != nil {
		return 0, fmt.Errorf("bench: pipeline: %w", err)
	}
	defer orch.Stop()
	exec, err := stage("b", func(wf, hop int) string {
		return pfx + "a." + strconv.Itoa(wf) + "." + strconv.Itoa(hop+1)
	})
	if err != nil {
		return 0, fmt.Errorf("bench: pipeline: %w", err)
	}
	defer exec.Stop()

	var next atomic.Int64
	var wg sync.WaitGroup
	begin := time.Now()
	for range c {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				wf := int(next.Add(1) - 1)
				if wf >= n || ctx.Err() != nil {
					return
				}
				ch := make(chan struct{})
				mu.Lock()
				waiting[wf] = ch
				mu.Unlock()
				if _, err := js.Publish(ctx, pfx+"a."+strconv.Itoa(wf)+".0", payload); err != nil {
					fail(err)
					return
				}
				select {
				case <-ch:
				case <-stop.Done():
					return
				}
			}
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case err := <-failed:
		cancel() // ends the clients too
		return 0, fmt.Errorf("bench: pipeline: %w", err)
	}
	if ctx.Err() != nil {
		return 0, fmt.Errorf("bench: pipeline: %w", ctx.Err())
	}
	return float64(n) / time.Since(begin).Seconds(), nil
}
