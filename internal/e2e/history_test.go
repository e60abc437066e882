package e2e

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/weftworks/weft/eventstore"
	weftv1 "github.com/weftworks/weft/gen/weft/v1"
)

// historyPages reads id's whole history in pages of size.
func (e *env) historyPages(id string, size int32) []*weftv1.HistoryEvent {
	e.t.Helper()
	var out []*weftv1.HistoryEvent
	for tok, pages := "", 0; ; pages++ {
		resp, err := e.wf.GetHistory(ctx(e.t), connect.NewRequest(&weftv1.GetHistoryRequest{WorkflowId: id, PageToken: tok, PageSize: size}))
		if err != nil {
			e.t.Fatalf("GetHistory page %d of size %d: %v", pages, size, err)
		}
		if int32(len(resp.Msg.Events)) > size {
			e.t.Fatalf("a page of size %d has %d events", size, len(resp.Msg.Events))
		}
		out = append(out, resp.Msg.Events...)
		if tok = resp.Msg.NextPageToken; tok == "" {
			return out
		}
		if len(resp.Msg.Events) == 0 {
			e.t.Fatalf("an empty page of size %d came with a next page token", size)
		}
	}
}

// Pages of every size read the same history, numbered 1, 2, 3... without
// gaps or repeats, whatever the records they split.
func TestHistoryPagesOfEverySizeReadTheSameHistory(t *testing.T) {
	e := newEnv(t, envOpts{})
	e.putDef(`
name: paged
steps:
  - id: each
    foreach: "${ input.items }"
    do:
      - { id: echo, task: echo, input: "${ item }" }
  - { id: last, task: echo, input: done }
`)
	id := e.start("paged", "paged-1", `{"items": [1,2,3,4,5,6]}`)
	e.waitClosed(id, 20*time.Second)
	all := e.historyPages(id, 1000)
	if len(all) < 15 {
		t.Fatalf("history has only %d events", len(all))
	}
	for i, ev := range all {
		if ev.Sequence != uint64(i+1) {
			t.Fatalf("event %d has sequence %d", i, ev.Sequence)
		}
	}
	want := strings.Join(types(all), " ")
	for _, size := range []int32{1, 2, 3, 5, 7, int32(len(all)), int32(len(all) - 1)} {
		got := e.historyPages(id, size)
		if g := strings.Join(types(got), " "); g != want {
			t.Fatalf("pages of %d read\n%s\nwant\n%s", size, g, want)
		}
		for i, ev := range got {
			if ev.Sequence != uint64(i+1) {
				t.Fatalf("pages of %d: event %d has sequence %d", size, i, ev.Sequence)
			}
		}
	}
	for _, bad := range []string{"5", "x.y.z", "0.0.1", "3.0.0", "1.2"} {
		_, err := e.wf.GetHistory(ctx(t), connect.NewRequest(&weftv1.GetHistoryRequest{WorkflowId: id, PageToken: bad}))
		if connect.CodeOf(err) != connect.CodeInvalidArgument || !strings.Contains(err.Error(), "next_page_token") {
			t.Fatalf("page token %q: %v; want InvalidArgument saying what to pass", bad, err)
		}
	}
	if _, err := e.wf.GetHistory(ctx(t), connect.NewRequest(&weftv1.GetHistoryRequest{WorkflowId: "no-such-run"})); connect.CodeOf(err) != connect.CodeNotFound {
		t.Fatalf("history of an unknown run: %v; want NotFound", err)
	}
}

// historyFollowers counts the consumers on the history stream that follow
// every history record (the API's one follower for watches).
func (e *env) historyFollowers() (all, total int) {
	e.t.Helper()
	js, err := jetstream.New(e.ns.Connect(e.t))
	if err != nil {
		e.t.Fatal(err)
	}
	stream, err := js.Stream(ctx(e.t), eventstore.HistoryStream)
	if err != nil {
		e.t.Fatal(err)
	}
	for info := range stream.ListConsumers(ctx(e.t)).Info() {
		total++
		if slicesContain(info.Config.FilterSubjects, "weft.h.>") || info.Config.FilterSubject == "weft.h.>" {
			all++
		}
	}
	return all, total
}

// Many watchers at once share one follower of the histories: each gets
// its run's whole history, in order and without gaps, and the history
// stream's consumers do not grow with them.
func TestManyWatchersShareOneFollower(t *testing.T) {
	e := newEnv(t, envOpts{})
	e.putDef(parkedDef)
	const runs, perRun = 30, 4
	_, before := e.historyFollowers()
	ids := make([]string, runs)
	for i := range ids {
		ids[i] = e.start("parked", fmt.Sprintf("watched-%d", i), `{}`)
	}
	type got struct {
		id  string
		evs []*weftv1.HistoryEvent
		err error
	}
	results := make(chan got, runs*perRun)
	var opened sync.WaitGroup
	for _, id := range ids {
		for range perRun {
			opened.Add(1)
			go func() {
				stream, err := e.wf.WatchWorkflow(ctx(t), connect.NewRequest(&weftv1.WatchWorkflowRequest{WorkflowId: id}))
				if err != nil {
					opened.Done()
					results <- got{id: id, err: err}
					return
				}
				var evs []*weftv1.HistoryEvent
				first := true
				for stream.Receive() {
					if first {
						opened.Done() // the watch is caught up on what is stored
						first = false
					}
					evs = append(evs, stream.Msg().Event)
				}
				if first {
					opened.Done()
				}
				results <- got{id: id, evs: evs, err: stream.Err()}
			}()
		}
	}
	opened.Wait()
	if all, total := e.historyFollowers(); all != 1 || total > before+2 {
		t.Fatalf("with %d watches open the history stream has %d followers of every record and %d consumers (%d before); want one follower", runs*perRun, all, total, before)
	}
	for _, id := range ids {
		if err := e.signal(id, "go", `"w"`); err != nil {
			t.Fatal(err)
		}
	}
	for range runs * perRun {
		r := <-results
		if r.err != nil {
			t.Fatalf("watch of %s: %v", r.id, r.err)
		}
		want := e.history(r.id)
		if g, w := strings.Join(types(r.evs), " "), strings.Join(types(want), " "); g != w {
			t.Fatalf("watch of %s read\n%s\nwant\n%s", r.id, g, w)
		}
		for i, ev := range r.evs {
			if ev.Sequence != uint64(i+1) {
				t.Fatalf("watch of %s: event %d has sequence %d", r.id, i, ev.Sequence)
			}
		}
	}
}
