package eventstore

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/weftworks/weft/eventstore/events"
)

// A timer scheduled at two times (a decision that lost its append
// deciding from its own later clock, beside the winner's) keeps both
// schedules: the later one does not move the earlier, which fires at its
// time. Timer reads the earliest, a cancel takes them all, and a schedule
// of the version before (under the timer's id alone) is still read.
func TestATimerScheduledAtAnotherTimeStandsBesideTheFirst(t *testing.T) {
	ctx := context.Background()
	s := deleting(t)
	const wf = "wf"
	soon := time.Now().Add(time.Second)
	late := soon.Add(10 * time.Minute)
	for _, due := range []time.Time{soon, late} {
		if err := s.ScheduleTimer(ctx, events.TimerDue{WorkflowID: wf, TimerID: "nap", Path: "nap", Due: due, After: 1}); err != nil {
			t.Fatal(err)
		}
	}
	// Scheduled again at the same time (the same decision made again), it
	// replaces its own schedule.
	if err := s.ScheduleTimer(ctx, events.TimerDue{WorkflowID: wf, TimerID: "nap", Path: "nap", Due: late, After: 1}); err != nil {
		t.Fatal(err)
	}
	info, err := s.timers.Info(ctx, jetstream.WithSubjectFilter(timerSchedPfx+wf+".nap.>"))
	if err != nil {
		t.Fatal(err)
	}
	if n := len(info.State.Subjects); n != 2 {
		t.Fatalf("%d schedules of the timer (%v); want one for each time", n, info.State.Subjects)
	}
	if st, at, err := s.Timer(ctx, wf, "nap"); err != nil || st != TimerScheduled || at.Before(soon) || at.Sub(soon) >= time.Second {
		t.Fatalf("Timer = %v at %s, %v; want scheduled at the earlier time %s", st, at, err, soon)
	}

	feed, err := s.Feed(ctx, SourceTimers, 4)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(feed.Stop)
	d, err := feed.Next()
	if err != nil {
		t.Fatal(err)
	}
	if d.Timer == nil || !d.Timer.Due.Equal(soon) {
		t.Fatalf("fired %+v; want the timer due at %s", d.Timer, soon)
	}
	if time.Now().Before(soon) || time.Since(soon) > 5*time.Second {
		t.Fatalf("the timer due at %s fired at %s", soon.Format(time.TimeOnly), time.Now().Format(time.TimeOnly))
	}
	if err := d.Ack(); err != nil {
		t.Fatal(err)
	}
	// Once the fired timer is taken, the later schedule is what is left.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		st, at, err := s.Timer(ctx, wf, "nap")
		if err == nil && st == TimerScheduled && !at.Before(late) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Timer = %v at %s, %v; want the later schedule left", st, at, err)
		}
	}
	if err := s.CancelTimer(ctx, wf, "nap"); err != nil {
		t.Fatal(err)
	}
	if st, _, err := s.Timer(ctx, wf, "nap"); err != nil || st != TimerMissing {
		t.Fatalf("Timer after the cancel = %v, %v", st, err)
	}

	// A schedule the version before wrote, under the timer's id alone.
	data, err := events.EncodeTimer(events.TimerDue{WorkflowID: wf, TimerID: "old", Path: "old", Due: late, After: 1})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.schedule(ctx, timerSchedPfx+wf+".old", timerFirePfx+wf, late, data, ""); err != nil {
		t.Fatal(err)
	}
	if st, at, err := s.Timer(ctx, wf, "old"); err != nil || st != TimerScheduled || at.Before(late) || at.Sub(late) >= time.Second {
		t.Fatalf("Timer of an older version's schedule = %v at %s, %v", st, at, err)
	}
}
