package orchestrator

import (
	"errors"
	"slices"
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
	appendNewerSignal(t, r, wf, last)
	js, err := jetstream.New(r.store.Conn())
	if err != nil {
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

// appendNewerSignal appends to wf's history, after its record last, a
// newer API's signal: a record layout this build does not read, appended
// as the API appends (conditional, linked to the last record).
func appendNewerSignal(t *testing.T, r *rig, wf string, last uint64) {
	t.Helper()
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
}

// A run whose history holds a record of a newer version (a rolling
// upgrade under way) is not this build's to judge: an input to it, read
// with that record in the way, is given back for an orchestrator that
// reads it. Failing the run as corrupt_history ended a run a newer part
// was driving, for good.
func TestARunWithANewerRecordIsNotFailedByAnOlderOrchestrator(t *testing.T) {
	r := newRig(t)
	r.putDef("gate", "name: gate\nsteps:\n  - { id: g, wait: { signal: go } }\n  - { id: h, wait: { signal: more } }\n")
	sh := r.shard()
	ext, _ := r.feeds()
	const wf = "newer-hist"
	r.start(wf, "gate")
	sh.handle(r.ctx, next(t, ext))
	_, last := r.count(wf, func(ev events.Event) bool { return ev.WaitStarted != nil })
	appendNewerSignal(t, r, wf, last)
	if d := next(t, ext); d.Err == nil {
		t.Fatalf("the record of a newer layout was read: %+v", d.Message)
	} else {
		_ = d.Nak(time.Hour) // a newer orchestrator's, say
	}
	sh.forget(wf)
	// A readable input comes after it: this orchestrator reads the run,
	// newer record and all.
	if err := r.store.PublishResult(r.ctx, events.Result{WorkflowID: wf, Path: "x", Gen: 1, Attempt: 1, Cmd: last,
		Outcome: events.OutcomeCompleted, Time: time.Now().UTC()}); err != nil {
		t.Fatal(err)
	}
	_, results := r.feeds()
	d := next(t, results)
	err := sh.processUntilSettled(r.ctx, d)
	var newer errNewer
	if !errors.As(err, &newer) {
		t.Fatalf("an input to a run with a newer record: %v; want it given back (errNewer)", err)
	}
	sh.handle(r.ctx, d)
	msgs, err := r.store.Read(r.ctx, wf, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range msgs {
		if m.Err == nil && slices.ContainsFunc(m.Record.Events, func(ev events.Event) bool { return ev.WorkflowFailed != nil }) {
			t.Fatalf("the run was failed by an orchestrator that cannot read its history: %+v", m.Record.Events)
		}
	}
}
