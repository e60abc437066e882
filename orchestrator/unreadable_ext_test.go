package orchestrator

import (
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/weftworks/weft/eventstore"
	"github.com/weftworks/weft/eventstore/events"
)

// A record on a run's .ext subject that this orchestrator cannot read (a
// signal, cancel, resume or start written by a newer API during a rolling
// upgrade) is an input accepted by the API: dropped for good (Term), no
// orchestrator, of any version, ever takes it, and the run waits for ever
// (here: a wait for the very signal that was recorded). It must be given
// back, as an unreadable result or fired timer is
// (TestAnUnreadableStoredResultOrTimerIsGivenBack).
func TestAnUnreadableOutsideRecordIsGivenBack(t *testing.T) {
	r := newRig(t)
	r.putDef("gate", "name: gate\nsteps:\n  - { id: g, wait: { signal: go } }\n")
	sh := r.shard()
	ext, _ := r.feeds()
	const wf = "unreadable-ext"
	r.start(wf, "gate")
	sh.handle(r.ctx, next(t, ext)) // the start: the wait begins
	n, last := r.count(wf, func(ev events.Event) bool { return ev.WaitStarted != nil })
	if n != 1 {
		t.Fatalf("%d WaitStarted events, want 1", n)
	}
	js0, err := jetstream.New(r.store.Conn())
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "the start settled", func() bool {
		c, err := js0.Consumer(r.ctx, eventstore.HistoryStream, eventstore.ExternalConsumer)
		if err != nil {
			return false
		}
		info, err := c.Info(r.ctx)
		return err == nil && info.NumAckPending == 0
	})
	// A newer API's signal: a record layout this build does not read,
	// appended as the API appends (conditional, linked to the last record).
	data, err := msgpack.Marshal(map[string]any{"v": 2, "e": []map[string]any{{"t": "SignalReceived", "ts": time.Now().UTC(),
		"SignalReceived": map[string]any{"name": "go", "rid": "r1"}}}})
	if err != nil {
		t.Fatal(err)
	}
	js, err := jetstream.New(r.store.Conn())
	if err != nil {
		t.Fatal(err)
	}
	msg := nats.NewMsg("weft.h." + wf + ".ext")
	msg.Data = data
	msg.Header.Set("Weft-Prev", strconv.FormatUint(last, 10))
	if _, err := js.PublishMsg(r.ctx, msg, jetstream.WithExpectLastSequenceForSubject(last, "weft.h."+wf+".>")); err != nil {
		t.Fatal(err)
	}
	d := next(t, ext)
	if d.Err == nil {
		t.Fatalf("the record of a newer layout was read: %+v", d.Message)
	}
	sh.handle(r.ctx, d)
	if err := r.store.Conn().Flush(); err != nil {
		t.Fatal(err)
	}
	cons, err := js.Consumer(r.ctx, eventstore.HistoryStream, eventstore.ExternalConsumer)
	if err != nil {
		t.Fatal(err)
	}
	info, err := cons.Info(r.ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("ack pending %d, ack floor %d, redelivered %d", info.NumAckPending, info.AckFloor.Stream, info.NumRedelivered)
	if info.NumAckPending != 1 {
		t.Fatalf("the unreadable outside record was settled for good (%d pending): the signal it records is lost to every orchestrator, and the run waits for ever", info.NumAckPending)
	}
}
