package chaos

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/weftworks/weft/eventstore"
)

// waitMetaLeader polls until a client of the cluster gets JetStream
// account information, which needs a meta leader.
func waitMetaLeader(ctx context.Context, urls string, limit time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	return poll(ctx, 200*time.Millisecond, func() (bool, error) {
		nc, err := nats.Connect(urls, nats.Timeout(2*time.Second), nats.Name("weft-chaos"))
		if err != nil {
			return false, err
		}
		defer nc.Close()
		js, err := jetstream.New(nc)
		if err != nil {
			return false, err
		}
		actx, acancel := context.WithTimeout(ctx, 2*time.Second)
		defer acancel()
		_, err = js.AccountInfo(actx)
		return err == nil, err
	})
}

// snapshotted counts the workflows with a snapshot stored (their first part).
func (h *Harness) snapshotted(ctx context.Context) (int, error) {
	nc, err := nats.Connect(h.natsURLs, nats.Timeout(2*time.Second), nats.Name("weft-chaos"))
	if err != nil {
		return 0, err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return 0, err
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	st, err := js.Stream(ctx, eventstore.SnapshotStream)
	if err != nil {
		return 0, err
	}
	info, err := st.Info(ctx, jetstream.WithSubjectFilter("weft.snap.*.0"))
	if err != nil {
		return 0, err
	}
	return len(info.State.Subjects), nil
}

// healthy reports whether a NATS node's /healthz says it is up with its
// JetStream assets current.
func healthy(ctx context.Context, url string) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return false, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return false, err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return false, fmt.Errorf("%s: %s", url, resp.Status)
	}
	return true, nil
}

// waitHealthy polls the given NATS nodes until each is healthy.
func (h *Harness) waitHealthy(ctx context.Context, nodes []int, limit time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	return poll(ctx, 200*time.Millisecond, func() (bool, error) {
		for _, i := range nodes {
			if ok, err := healthy(ctx, h.health[i]); !ok {
				return false, err
			}
		}
		return true, nil
	})
}

// Kills counts the kills of a run by kind of part. Beat counts those of
// the Executor kills that hit an executor of the beat shape's task.
type Kills struct {
	NATS, Orchestrator, Executor, API int
	Beat                              int
}

// Total is the number of kills (Beat is among the Executor kills).
func (k Kills) Total() int { return k.NATS + k.Orchestrator + k.Executor + k.API }

// chaos kills a random part every KillEvery (±25%) until ctx ends, and
// starts it again on the same ports and store after a short pause. Parts
// are chosen from a shuffled bag of the four kinds, so every kind is hit
// as often as the others (every other executor kill picks one of the
// beat executors, when the run has them); a NATS node is killed only when all
// three are healthy, so never more than one is down or catching up.
func (h *Harness) chaos(ctx context.Context, rng *rand.Rand, kills *Kills, mu *sync.Mutex) {
	var bag []string
	jitter := func(d time.Duration) time.Duration {
		return d*3/4 + time.Duration(rng.Int64N(int64(d/2)+1))
	}
	next := time.Now().Add(jitter(h.cfg.KillEvery))
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Until(next)):
		}
		next = time.Now().Add(jitter(h.cfg.KillEvery))
		if len(bag) == 0 {
			bag = []string{kindNATS, kindOrchestrator, kindExecutor, kindAPI}
			rng.Shuffle(len(bag), func(i, j int) { bag[i], bag[j] = bag[j], bag[i] })
		}
		kind := bag[0]
		bag = bag[1:]
		var p *proc
		node := -1
		switch kind {
		case kindNATS:
			node = rng.IntN(len(h.nats))
			p = h.nats[node]
			if err := h.waitHealthy(ctx, []int{0, 1, 2}, time.Minute); err != nil {
				if ctx.Err() != nil {
					return
				}
				h.logf("NATS not healthy on all nodes (%v); killing %s anyway is unsafe, skipping it", err, p.name)
				continue
			}
		case kindOrchestrator:
			p = h.orch[rng.IntN(len(h.orch))]
		case kindExecutor:
			// Every other executor kill hits a beat executor, when the
			// run has them: a short run kills one of each.
			execs := h.exec
			mu.Lock()
			if len(h.beat) > 0 && kills.Executor%2 == 1 {
				execs = h.beat
			}
			mu.Unlock()
			p = execs[rng.IntN(len(execs))]
		case kindAPI:
			p = h.api
		}
		pause := 500*time.Millisecond + time.Duration(rng.Int64N(int64(1500*time.Millisecond)))
		if kind == kindNATS {
			pause += time.Second
		}
		h.logf("kill -9 %s; restart in %s", p.name, pause.Round(time.Millisecond))
		p.kill()
		mu.Lock()
		switch kind {
		case kindNATS:
			kills.NATS++
		case kindOrchestrator:
			kills.Orchestrator++
		case kindExecutor:
			kills.Executor++
			if slices.Contains(h.beat, p) {
				kills.Beat++
			}
		case kindAPI:
			kills.API++
		}
		mu.Unlock()
		// The pause is part of the schedule; the part comes back even when
		// the run is ending.
		time.Sleep(pause)
		if err := p.start(); err != nil {
			h.logf("restart %s: %v", p.name, err)
			return
		}
		// Wait until the part is back before the next kill.
		if node >= 0 {
			if err := h.waitHealthy(context.WithoutCancel(ctx), []int{node}, 2*time.Minute); err != nil {
				h.logf("%s not healthy after its restart: %v", p.name, err)
			}
		} else {
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
			err := h.waitReady(rctx, p)
			cancel()
			if err != nil {
				h.logf("%s not running a minute after its restart: %v", p.name, err)
			}
		}
	}
}
