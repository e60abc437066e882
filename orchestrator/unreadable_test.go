package orchestrator

import (
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/weftworks/weft/eventstore"
	"github.com/weftworks/weft/eventstore/events"
)

// A result an orchestrator cannot read (written by a newer executor during
// a rolling upgrade, which operations.md asks to upgrade executors first)
// must not be confirmed to its executor: confirmed, the executor acks its
// step command and the result is gone, so the step waits for ever. A
// direct start the orchestrator cannot read is declined for the same
// reason (TestDirectStartsDeclineWhatTheyCannotRead).
func TestAnUnreadableDirectResultIsNotConfirmed(t *testing.T) {
	r := newRig(t)
	r.putDef("one", oneTask)
	r.run()
	const wf = "unreadable"
	r.start(wf, "one")
	var cmd uint64
	eventually(t, 10*time.Second, "the step command", func() bool {
		var n int
		n, cmd = r.count(wf, func(ev events.Event) bool { return ev.StepScheduled != nil })
		return n == 1
	})
	// A newer executor's result: a layout version this build does not read.
	data, err := msgpack.Marshal(events.Result{V: 2, WorkflowID: wf, Path: "a", Gen: 1, Attempt: 1,
		Outcome: events.OutcomeCompleted, Output: "done", Time: time.Now().UTC(), Cmd: cmd})
	if err != nil {
		t.Fatal(err)
	}
	reply, err := r.store.Conn().Request("weft.rd."+wf, data, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := r.count(wf, func(ev events.Event) bool { return ev.StepCompleted != nil }); n != 0 {
		t.Fatalf("the unreadable result was recorded %d times", n)
	}
	if string(reply.Data) == "+OK" {
		t.Fatal("an orchestrator that could not read a result told its executor it was recorded: the executor acks its command and the result is lost")
	}
}

// A stored result or fired timer an orchestrator cannot read is given
// back, for one that can (a newer version's), not dropped for good: the
// step or the sleep would wait for ever.
func TestAnUnreadableStoredResultOrTimerIsGivenBack(t *testing.T) {
	for _, c := range []struct {
		name, subject, stream, consumer string
		source                          eventstore.Source
		data                            any
	}{
		{"result", "weft.r.wf", eventstore.ResultsStream, eventstore.ResultsConsumer, eventstore.SourceResults,
			events.Result{V: 2, WorkflowID: "wf", Path: "a", Gen: 1, Attempt: 1, Outcome: events.OutcomeCompleted, Time: time.Now().UTC()}},
		{"timer", "weft.t.f.wf", eventstore.TimersStream, eventstore.TimersConsumer, eventstore.SourceTimers,
			map[string]any{"v": 2, "wf": "wf", "tid": "t", "due": time.Now().UTC()}},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := newRig(t)
			sh := r.shard()
			feed, err := r.store.Feed(r.ctx, c.source, 8)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(feed.Stop)
			data, err := msgpack.Marshal(c.data)
			if err != nil {
				t.Fatal(err)
			}
			js, err := jetstream.New(r.store.Conn())
			if err != nil {
				t.Fatal(err)
			}
			if _, err := js.Publish(r.ctx, c.subject, data); err != nil {
				t.Fatal(err)
			}
			d := next(t, feed)
			if d.Err == nil {
				t.Fatalf("the %s of a newer layout was read: %+v", c.name, d)
			}
			sh.handle(r.ctx, d)
			if err := r.store.Conn().Flush(); err != nil {
				t.Fatal(err)
			}
			cons, err := js.Consumer(r.ctx, c.stream, c.consumer)
			if err != nil {
				t.Fatal(err)
			}
			info, err := cons.Info(r.ctx)
			if err != nil {
				t.Fatal(err)
			}
			if info.NumAckPending != 1 {
				t.Fatalf("the unreadable %s was settled for good (%d pending): no orchestrator of a newer version can take it", c.name, info.NumAckPending)
			}
		})
	}
}
