package api

import "testing"

// A start readied for but refused (or a duplicate) leaves no empty entry
// behind to push cached states out; one whose state was read meanwhile
// stays.
func TestUnexpectDropsAnEmptyEntry(t *testing.T) {
	c := newStates(4)
	if !c.expect("refused", 1) {
		t.Fatal("expect on an uncached run readied nothing")
	}
	c.unexpect("refused")
	if _, ok := c.peek("refused"); ok {
		t.Fatal("the refused start's empty entry is still cached")
	}

	if !c.expect("read", 1) {
		t.Fatal("expect on an uncached run readied nothing")
	}
	e, _ := c.peek("read")
	e.view = &stateView{}
	c.unexpect("read")
	if got, ok := c.peek("read"); !ok || got != e || e.expect.Load() != 0 {
		t.Fatalf("an entry holding a state: cached %v, expect %d", ok, e.expect.Load())
	}
}
