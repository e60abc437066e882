package eventstore_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/weftworks/weft/eventstore"
	"github.com/weftworks/weft/eventstore/events"
	"github.com/weftworks/weft/internal/natstest"
)

// openMarked opens a store whose markers and unused entries go after a
// second.
func openMarked(t *testing.T) (*eventstore.Store, jetstream.JetStream) {
	t.Helper()
	ns := natstest.Start(t)
	s, err := eventstore.Open(context.Background(), ns.Connect(t), eventstore.Config{MarkerTTL: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	js, err := jetstream.New(s.Conn())
	if err != nil {
		t.Fatal(err)
	}
	return s, js
}

// subjectGone waits until stream keeps no message on subject: neither the
// entry nor a marker of it.
func subjectGone(t *testing.T, js jetstream.JetStream, stream, subject string) {
	t.Helper()
	ctx := context.Background()
	st, err := js.Stream(ctx, stream)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		_, err := st.GetLastMsgForSubject(ctx, subject)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s still holds a message on %s", stream, subject)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// A deleted run's listing marker refuses a late write of its entry, and
// goes after MarkerTTL: the markers of runs deleted do not pile up. A run
// started again under the id is listed either way.
func TestADeletedRunsMarkerGoes(t *testing.T) {
	s, js := openMarked(t)
	ctx := context.Background()
	for _, wf := range []string{"old", "again"} {
		seq, err := s.Append(ctx, wf, 0, started(wf))
		if err != nil {
			t.Fatal(err)
		}
		if errs := s.PutSummaries(ctx, []eventstore.Summary{{ID: wf, Definition: "d", Revision: 1, Status: "running", Seq: seq}}); errs[0] != nil {
			t.Fatal(errs[0])
		}
		if err := s.DeleteRun(ctx, wf, 0); err != nil {
			t.Fatal(err)
		}
	}
	if errs := s.PutSummaries(ctx, []eventstore.Summary{{ID: "old", Definition: "d", Revision: 1, Status: "completed", Seq: 9}}); !errors.Is(errs[0], eventstore.ErrSuperseded) {
		t.Fatalf("a late write while the marker is kept: %v", errs[0])
	}
	// Started again at once, over its marker.
	seq, err := s.AppendStart(ctx, "again", "start/again/2", eventstore.AppendOpts{}, []events.Event{started("again")})
	if err != nil {
		t.Fatal(err)
	}
	if errs := s.PutSummaries(ctx, []eventstore.Summary{{ID: "again", Definition: "d", Revision: 1, Status: "running", Seq: seq}}); errs[0] != nil {
		t.Fatalf("the first entry of a run started again: %v", errs[0])
	}
	subjectGone(t, js, "KV_"+eventstore.WorkflowsBucket, "$KV."+eventstore.WorkflowsBucket+".old")
	if sum, err := s.GetSummary(ctx, "again"); err != nil || sum.Seq != seq {
		t.Fatalf("the run started again: %+v %v", sum, err)
	}
}

// An unused concurrency or rate-limit entry goes after it stops meaning
// anything, and the key works as before afterwards.
func TestUnusedFlowAndSlotEntriesGo(t *testing.T) {
	s, js := openMarked(t)
	ctx := context.Background()
	now := time.Now()
	if _, took, err := s.UpdateSlots(ctx, "d", "k", 1, func(sl *eventstore.Slots) { sl.Enqueue("r1", eventstore.RunOf(now, 0)) }); err != nil || len(took) != 1 {
		t.Fatalf("a slot: %v %v", took, err)
	}
	if ok, _, err := s.AcquireSlot(ctx, "d/step", "k", 1, "a", now, time.Second); err != nil || !ok {
		t.Fatalf("a step slot: %v %v", ok, err)
	}
	if ok, _, err := s.TakeToken(ctx, "d/step", "k", 1, time.Second, now); err != nil || !ok {
		t.Fatalf("a token: %v %v", ok, err)
	}
	// A held slot stays, however long.
	time.Sleep(2500 * time.Millisecond)
	if sl, err := s.ReadSlots(ctx, "d", "k"); err != nil || len(sl.Holders) != 1 {
		t.Fatalf("a held slot after the marker TTL: %+v %v", sl, err)
	}
	if _, _, err := s.UpdateSlots(ctx, "d", "k", 1, func(sl *eventstore.Slots) { sl.Holders = nil }); err != nil {
		t.Fatal(err)
	}
	if err := s.ReleaseSlot(ctx, "d/step", "k", "a", now.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	flow := "KV_" + eventstore.FlowBucket
	subjectGone(t, js, "KV_"+eventstore.SlotsBucket, "$KV."+eventstore.SlotsBucket+".>")
	subjectGone(t, js, flow, "$KV."+eventstore.FlowBucket+".>")
	// The keys work again, over what is left of them.
	for range 2 {
		if _, took, err := s.UpdateSlots(ctx, "d", "k", 1, func(sl *eventstore.Slots) { sl.Enqueue("r2", eventstore.RunOf(now, 0)) }); err != nil {
			t.Fatalf("a slot again: %v %v", took, err)
		}
		if ok, _, err := s.AcquireSlot(ctx, "d/step", "k", 1, "b", time.Now(), time.Minute); err != nil || !ok {
			t.Fatalf("a step slot again: %v %v", ok, err)
		}
		if ok, _, err := s.TakeToken(ctx, "d/step", "k", 5, time.Hour, time.Now()); err != nil || !ok {
			t.Fatalf("a token again: %v %v", ok, err)
		}
	}
	if sl, err := s.ReadSlots(ctx, "d", "k"); err != nil || len(sl.Holders) != 1 || sl.Holders[0] != "r2" {
		t.Fatalf("the slot taken again: %+v %v", sl, err)
	}
	if h, err := s.SlotHolders(ctx, "d/step", "k", time.Now()); err != nil || len(h) != 1 || h[0] != "b" {
		t.Fatalf("the step slot taken again: %v %v", h, err)
	}
	if ok, _, err := s.TakeToken(ctx, "d/step", "k", 2, time.Hour, time.Now()); err != nil || ok {
		t.Fatalf("a third token of the hour over a limit of 2: %v %v", ok, err)
	}
}

// A bucket made by an earlier version, which keeps markers for good, lets
// its messages carry a TTL once the store opens, with no marker put in
// place of an expired entry (one would roll up a write acked just before
// it), and keeps what an operator tuned.
func TestOpenLetsAnEarlierBucketsMessagesExpire(t *testing.T) {
	ns := natstest.Start(t)
	ctx := context.Background()
	js, err := jetstream.New(ns.Connect(t))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: eventstore.WorkflowsBucket,
		Description: "Weft workflow index for listing (rebuildable from history)", MaxBytes: 1 << 30, Compression: true}); err != nil {
		t.Fatal(err)
	}
	for range 2 { // and again, changing nothing
		if _, err := eventstore.Open(ctx, ns.Connect(t), eventstore.Config{}); err != nil {
			t.Fatal(err)
		}
	}
	for _, b := range []string{eventstore.WorkflowsBucket, eventstore.SlotsBucket, eventstore.FlowBucket, eventstore.CronBucket} {
		st, err := js.Stream(ctx, "KV_"+b)
		if err != nil {
			t.Fatal(err)
		}
		if c := st.CachedInfo().Config; !c.AllowMsgTTL || c.SubjectDeleteMarkerTTL != 0 {
			t.Fatalf("%s: AllowMsgTTL %v, marker TTL %v", b, c.AllowMsgTTL, c.SubjectDeleteMarkerTTL)
		}
	}
	st, err := js.Stream(ctx, "KV_"+eventstore.WorkflowsBucket)
	if err != nil {
		t.Fatal(err)
	}
	if c := st.CachedInfo().Config; c.MaxBytes != 1<<30 || c.Compression != jetstream.S2Compression {
		t.Fatalf("the operator's settings were lost: MaxBytes %d, compression %v", c.MaxBytes, c.Compression)
	}
}

// A bucket made by an earlier version (baf394c), which put a marker
// in place of every expired entry (LimitMarkerTTL), puts none once the
// store opens: the marker rolls up a write acked just before it.
func TestOpenDropsAnEarlierBucketsMarkers(t *testing.T) {
	ns := natstest.Start(t)
	ctx := context.Background()
	js, err := jetstream.New(ns.Connect(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range []struct{ name, desc string }{
		{eventstore.WorkflowsBucket, "Weft workflow index for listing (rebuildable from history)"},
		{eventstore.SlotsBucket, "Weft definition-level concurrency: per definition and key, the runs holding a slot and those queued"},
	} {
		if _, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: b.name, Description: b.desc, LimitMarkerTTL: time.Hour}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := eventstore.Open(ctx, ns.Connect(t), eventstore.Config{}); err != nil {
		t.Fatal(err)
	}
	for _, b := range []string{eventstore.WorkflowsBucket, eventstore.SlotsBucket} {
		st, err := js.Stream(ctx, "KV_"+b)
		if err != nil {
			t.Fatal(err)
		}
		if c := st.CachedInfo().Config; !c.AllowMsgTTL || c.SubjectDeleteMarkerTTL != 0 {
			t.Errorf("%s: AllowMsgTTL %v, marker TTL %v", b, c.AllowMsgTTL, c.SubjectDeleteMarkerTTL)
		}
	}
}
