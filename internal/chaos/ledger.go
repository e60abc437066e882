package chaos

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"io"
	"maps"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Ledger is the outside system the workflows call: an HTTP server that
// counts the requests it gets per Idempotency-Key and fails a fraction of
// them with 503. Whether the n-th call of a key fails is decided by a hash
// of the seed, the key and n, so a run's failures do not depend on the
// order in which calls happen to arrive. Keys can also be refused on
// purpose (Refuse), or their calls held unanswered (Hold), until they are
// released. A call whose URL has a slot query parameter (a concurrency
// key, with its limit as the limit parameter, slotLimit without) is held
// for slotHold and counted, while in flight, among the calls of its slot
// (see Slots). The time of a call whose URL has a rate parameter is
// recorded under it (see Rated). Requests to spanPath open and close
// spans of a slot (see Spans).
type Ledger struct {
	seed     int64
	failRate float64
	slowRate float64
	slow     time.Duration

	srv *http.Server
	ln  net.Listener

	mu      sync.Mutex
	keys    map[string]*KeyCount
	refused map[string]int // key -> status answered
	held    map[string]*hold
	// inFlight counts, per slot and run (workflow id), the calls in
	// flight, and flightKey is the idempotency key of each run's; slots
	// is what Slots returns.
	inFlight  map[string]map[string]int
	flightKey map[string]string
	slots     SlotCounts
	rated     map[string][]RatedCall
	// spans are the spans open, by id; spanCounts is what Spans returns.
	spans      map[string]*span
	spanCounts SpanCounts
}

// hold is what Hold holds of a key: calls more of its calls (every one
// when negative), until release is closed.
type hold struct {
	calls   int
	release chan struct{}
}

// holdMax bounds how long the ledger holds a call (see Hold).
const holdMax = time.Minute

// RatedCall is a call the ledger recorded the time of.
type RatedCall struct {
	// At is when the call arrived.
	At time.Time
	// First is set on the first call of its idempotency key.
	First bool
}

// SlotCounts is what the ledger saw of the calls with a slot.
type SlotCounts struct {
	// Most is, per slot, the most runs that had a call in flight at once,
	// and Limits the limit of each slot.
	Most, Limits map[string]int
	// Repeats counts, per slot, the calls of a key that had succeeded
	// before: a handler that finished run again by at-least-once
	// delivery, whose effect the key absorbs. They are not counted in
	// Most: such a call may come after its run closed and gave up its
	// slot. RepeatsBeside counts those that came while another run of
	// the slot had a call in flight.
	Repeats, RepeatsBeside map[string]int
	// LateBeside counts, per slot, the calls that came while another
	// run's call was still in flight though a call of its key had
	// succeeded meanwhile: one attempt run twice at once (its first
	// executor lost from NATS, the attempt delivered again), the first
	// answered, the run closed and its slot given up while the second
	// still ran. The key absorbs that duplicate; the run is not counted
	// in Most.
	LateBeside map[string]int
	// Overlaps name the runs seen in flight together beyond their slot's
	// limit.
	Overlaps []string
}

// slotHold is how long the ledger holds a call of a slot, so that runs
// of one concurrency key would overlap at the ledger were they let run
// beside each other. slotLimit is the most runs of a slot that may have a
// call in flight at once when the call names no limit (the queued
// definition's concurrency limit).
const (
	slotHold  = 300 * time.Millisecond
	slotLimit = 1
)

// KeyCount is what the ledger saw for one idempotency key.
type KeyCount struct {
	// Calls counts every request.
	Calls int
	// OK counts the requests answered 2xx.
	OK int
	// Failed counts the requests answered 503.
	Failed int
	// Refused counts the requests refused on purpose (see Refuse).
	Refused int
	// Abandoned counts the requests held (see Hold) whose caller gave up
	// before they were answered: an attempt that timed out, an executor
	// killed. They are not carried out, nor counted in OK or Failed.
	Abandoned int
}

// ledgerResponse is the body of a successful call.
type ledgerResponse struct {
	Key  string `json:"key"`
	Echo any    `json:"echo"`
}

// StartLedger listens on a free port of 127.0.0.1. failRate of the calls
// get 503; slowRate of them are held for slow before they are answered,
// so that some calls are in flight when an executor dies.
func StartLedger(seed int64, failRate, slowRate float64, slow time.Duration) (*Ledger, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	l := &Ledger{seed: seed, failRate: failRate, slowRate: slowRate, slow: slow, ln: ln, keys: map[string]*KeyCount{}, refused: map[string]int{},
		held: map[string]*hold{}, inFlight: map[string]map[string]int{}, flightKey: map[string]string{}, rated: map[string][]RatedCall{},
		spans: map[string]*span{}, spanCounts: SpanCounts{Most: map[string]int{}, Limits: map[string]int{}},
		slots: SlotCounts{Most: map[string]int{}, Limits: map[string]int{}, Repeats: map[string]int{}, RepeatsBeside: map[string]int{}, LateBeside: map[string]int{}}}
	l.srv = &http.Server{Handler: l, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = l.srv.Serve(ln) }()
	return l, nil
}

// URL is the ledger's base URL.
func (l *Ledger) URL() string { return "http://" + l.ln.Addr().String() }

// Close stops the server.
func (l *Ledger) Close() error { return l.srv.Close() }

// roll returns a number in [0, 1) from the seed, a salt, the key and n.
func (l *Ledger) roll(salt byte, key string, n int) float64 {
	h := fnv.New64a()
	var b [17]byte
	binary.LittleEndian.PutUint64(b[:8], uint64(l.seed))
	binary.LittleEndian.PutUint64(b[8:16], uint64(n))
	b[16] = salt
	h.Write(b[:])
	h.Write([]byte(key))
	return float64(h.Sum64()>>11) / (1 << 53)
}

// Refuse makes the ledger answer every call of key with status until
// Release: a 4xx other than 429, which the http task does not retry, or a
// 5xx other than 503 (not counted as an injected failure), which it
// retries while attempts remain.
func (l *Ledger) Refuse(key string, status int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.refused[key] = status
}

// Hold makes the ledger hold the next calls calls of key (every one when
// calls is negative) before it answers them, until Release, or until
// their caller gives up (the attempt's timeout passed, or its executor
// died), which abandons the call: it is not carried out. A call is held
// holdMax at most. A refused key's calls are refused at once.
func (l *Ledger) Hold(key string, calls int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.held[key] = &hold{calls: calls, release: make(chan struct{})}
}

// Release ends the refusal and the hold of key: its calls, and those held
// now, are answered as any other.
func (l *Ledger) Release(key string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.refused, key)
	if hd := l.held[key]; hd != nil {
		close(hd.release)
		delete(l.held, key)
	}
}

// ServeHTTP counts the call and answers it: the refusal's status for a
// refused key, 503 for an injected failure, otherwise 200 with the key
// and the request body echoed back.
func (l *Ledger) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == spanPath {
		l.serveSpan(w, r)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		http.Error(w, "read body: "+err.Error(), http.StatusBadRequest)
		return
	}
	key := r.Header.Get("Idempotency-Key")
	l.mu.Lock()
	kc := l.keys[key]
	if kc == nil {
		kc = &KeyCount{}
		l.keys[key] = kc
	}
	kc.Calls++
	n, repeat := kc.Calls, kc.OK > 0
	if rate := r.URL.Query().Get("rate"); rate != "" {
		l.rated[rate] = append(l.rated[rate], RatedCall{At: time.Now(), First: n == 1})
	}
	refused := l.refused[key]
	var held chan struct{}
	if hd := l.held[key]; hd != nil && refused == 0 && hd.calls != 0 {
		held = hd.release
		hd.calls--
	}
	fail := refused == 0 && l.roll('f', key, n) < l.failRate
	switch {
	case refused != 0:
		kc.Refused++
	case fail:
		kc.Failed++
	}
	l.mu.Unlock()

	if refused != 0 {
		http.Error(w, "refused on purpose", refused)
		return
	}
	if held != nil {
		select {
		case <-held:
		case <-r.Context().Done():
		case <-time.After(holdMax):
		}
		if r.Context().Err() != nil {
			// The caller gave up: the call is not carried out.
			l.mu.Lock()
			kc.Abandoned++
			if fail {
				kc.Failed--
			}
			l.mu.Unlock()
			return
		}
	}
	if slot := r.URL.Query().Get("slot"); slot != "" {
		limit, err := strconv.Atoi(r.URL.Query().Get("limit"))
		if err != nil {
			limit = slotLimit
		}
		defer l.enter(slot, limit, key, repeat)()
		select {
		case <-time.After(slotHold):
		case <-r.Context().Done():
		}
	} else if l.roll('s', key, n) < l.slowRate {
		select {
		case <-time.After(l.slow):
		case <-r.Context().Done():
		}
	}
	if fail {
		http.Error(w, "injected failure", http.StatusServiceUnavailable)
		return
	}
	var echo any
	if len(body) > 0 {
		if err := json.Unmarshal(body, &echo); err != nil {
			echo = string(body)
		}
	}
	out, _ := json.Marshal(ledgerResponse{Key: key, Echo: echo})
	l.mu.Lock()
	kc.OK++
	l.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(out)
}

// enter counts a call of key in flight in slot (of limit), by the run the key
// belongs to (the workflow id before its last "/"), and returns the
// function that counts it out. Calls of one run count once: an attempt
// run again by at-least-once delivery beside its own lost call holds the
// run's slot, not another. A repeat of a call that succeeded is counted
// apart (see SlotCounts).
func (l *Ledger) enter(slot string, limit int, key string, repeat bool) func() {
	run := key
	if i := strings.LastIndexByte(key, '/'); i >= 0 {
		run = key[:i]
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	runs := l.inFlight[slot]
	l.slots.Limits[slot] = limit
	if repeat {
		l.slots.Repeats[slot]++
		if len(runs) > 0 && (len(runs) > 1 || runs[run] == 0) {
			l.slots.RepeatsBeside[slot]++
		}
		return func() {}
	}
	if runs == nil {
		runs = map[string]int{}
		l.inFlight[slot] = runs
	}
	runs[run]++
	l.flightKey[run] = key
	// The runs of the slot in flight, less those whose call in flight is
	// a duplicate of one that succeeded meanwhile (see LateBeside).
	var live []string
	for r := range runs {
		if kc := l.keys[l.flightKey[r]]; r != run && kc != nil && kc.OK > 0 {
			l.slots.LateBeside[slot]++
			continue
		}
		live = append(live, r)
	}
	l.slots.Most[slot] = max(l.slots.Most[slot], len(live))
	if len(live) > limit && len(l.slots.Overlaps) < 20 {
		slices.Sort(live)
		l.slots.Overlaps = append(l.slots.Overlaps, fmt.Sprintf("slot %s: %s", slot, strings.Join(live, ", ")))
	}
	return func() {
		l.mu.Lock()
		defer l.mu.Unlock()
		if runs[run]--; runs[run] == 0 {
			delete(runs, run)
			delete(l.flightKey, run)
		}
	}
}

// Slots returns a copy of what the ledger saw of the calls with a slot.
func (l *Ledger) Slots() SlotCounts {
	l.mu.Lock()
	defer l.mu.Unlock()
	return SlotCounts{Most: maps.Clone(l.slots.Most), Limits: maps.Clone(l.slots.Limits), Repeats: maps.Clone(l.slots.Repeats),
		RepeatsBeside: maps.Clone(l.slots.RepeatsBeside), LateBeside: maps.Clone(l.slots.LateBeside), Overlaps: slices.Clone(l.slots.Overlaps)}
}

// Rated returns the calls recorded under rate, in the order they arrived.
func (l *Ledger) Rated(rate string) []RatedCall {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.rated[rate])
}

// Snapshot returns a copy of the counts per key.
func (l *Ledger) Snapshot() map[string]KeyCount {
	l.mu.Lock()
	defer l.mu.Unlock()
	m := make(map[string]KeyCount, len(l.keys))
	for k, v := range l.keys {
		m[k] = *v
	}
	return m
}

// spanPath is the ledger's path of spans: a handler holding a concurrency
// slot tells the ledger when it begins and ends its work, so that the
// ledger sees how many holders of a slot work at once.
//
// A span begins with a request of phase=begin, id (the span's), slot,
// limit and holder (the attempt: run, step path and attempt number),
// answered at once and then held open until the span ends: by a request
// of phase=end with its id, answered once the end is recorded, or when
// its connection closes first (the handler's process was killed: its
// handler is dead, and so is its span).
const spanPath = "/span"

// span is a span open at the ledger.
type span struct {
	slot, holder string
	began        time.Time
	// end is closed when the span ends.
	end chan struct{}
	// twin is set on a span whose holder's other span ended while it was
	// open (see SpanCounts.Twins).
	twin bool
}

// SpanCounts is what the ledger saw of the spans of slots.
type SpanCounts struct {
	// Spans counts the spans begun, Ended those ended by their handler,
	// Cut those whose connection closed first (a killed process).
	Spans, Ended, Cut int
	// Longest is the longest span ended by its handler.
	Longest time.Duration
	// Over counts, per duration in Durations, the spans ended by their
	// handler that lasted longer than it.
	Durations []time.Duration
	Over      []int
	// Most is, per slot, the most holders with a span open at once, and
	// Limits the limit of each slot.
	Most, Limits map[string]int
	// Twins counts the spans still open when another span of their
	// holder ended: one attempt run twice at once (its first executor
	// lost from NATS, the attempt delivered again), whose slot the first
	// to end gave back while the other still worked. They are not
	// counted among the holders at once from then on.
	Twins int
	// Overlaps are the times more holders of a slot than its limit had
	// a span open at once.
	Overlaps []SpanOverlap
}

// SpanOverlap is a span's begin that made more holders of its slot work
// at once than its limit.
type SpanOverlap struct {
	Slot string
	At   time.Time
	// Holder is the span's, Beside the other holders with a span open
	// then.
	Holder string
	Beside []string
}

// SpansOver makes the ledger count the spans ended by their handler that
// last longer than each of durations (see SpanCounts.Over).
func (l *Ledger) SpansOver(durations ...time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.spanCounts.Durations, l.spanCounts.Over = slices.Clone(durations), make([]int, len(durations))
}

// serveSpan begins or ends a span (see spanPath).
func (l *Ledger) serveSpan(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	id := q.Get("id")
	switch q.Get("phase") {
	case "begin":
		limit, err := strconv.Atoi(q.Get("limit"))
		if id == "" || q.Get("slot") == "" || q.Get("holder") == "" || err != nil {
			http.Error(w, "a span's begin needs id, slot, limit and holder", http.StatusBadRequest)
			return
		}
		s := l.beginSpan(id, q.Get("slot"), q.Get("holder"), limit)
		if s == nil {
			http.Error(w, "span "+id+" begun already", http.StatusConflict)
			return
		}
		w.WriteHeader(http.StatusOK)
		if f, ok := w.(http.Flusher); ok {
			f.Flush()
		}
		select {
		case <-s.end:
		case <-r.Context().Done():
			l.endSpan(id, true)
		}
	case "end":
		if !l.endSpan(id, false) {
			http.Error(w, "no span "+id+" open", http.StatusNotFound)
		}
	default:
		http.Error(w, "phase must be begin or end", http.StatusBadRequest)
	}
}

// beginSpan opens span id of holder in slot (of limit) and counts the
// holders of the slot with a span open (twins aside); nil when id is open
// already.
func (l *Ledger) beginSpan(id, slot, holder string, limit int) *span {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.spans[id] != nil {
		return nil
	}
	s := &span{slot: slot, holder: holder, began: time.Now(), end: make(chan struct{})}
	l.spans[id] = s
	c := &l.spanCounts
	c.Spans++
	c.Limits[slot] = limit
	holders := map[string]bool{}
	for _, o := range l.spans {
		if o.slot == slot && !o.twin {
			holders[o.holder] = true
		}
	}
	c.Most[slot] = max(c.Most[slot], len(holders))
	if len(holders) > limit && len(c.Overlaps) < 100 {
		delete(holders, holder)
		c.Overlaps = append(c.Overlaps, SpanOverlap{Slot: slot, At: s.began, Holder: holder, Beside: sortedKeys(holders)})
	}
	return s
}

// endSpan ends span id, cut when its connection closed before its end
// was asked for, and reports whether it was open. The other spans of its
// holder still open are twins from then on.
func (l *Ledger) endSpan(id string, cut bool) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.spans[id]
	if s == nil {
		return false
	}
	delete(l.spans, id)
	close(s.end)
	c := &l.spanCounts
	if cut {
		c.Cut++
		return true
	}
	c.Ended++
	took := time.Since(s.began)
	c.Longest = max(c.Longest, took)
	for i, d := range c.Durations {
		if took > d {
			c.Over[i]++
		}
	}
	for _, o := range l.spans {
		if o.holder == s.holder && !o.twin {
			o.twin = true
			c.Twins++
		}
	}
	return true
}

// Spans returns a copy of what the ledger saw of the spans of slots.
func (l *Ledger) Spans() SpanCounts {
	l.mu.Lock()
	defer l.mu.Unlock()
	c := l.spanCounts
	c.Durations, c.Over = slices.Clone(c.Durations), slices.Clone(c.Over)
	c.Most, c.Limits, c.Overlaps = maps.Clone(c.Most), maps.Clone(c.Limits), slices.Clone(c.Overlaps)
	return c
}
