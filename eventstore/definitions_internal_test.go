package eventstore

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/weftworks/weft/internal/natstest"
)

// A writer that stored <name>.<N+1> and died (or whose update of
// <name>.latest failed) before it moved <name>.latest on must not leave the
// definition unable to take any new revision.
func TestPutDefinitionAfterAWriterDiedBetweenItsTwoWrites(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, natstest.Start(t).Connect(t), Config{})
	if err != nil {
		t.Fatal(err)
	}
	const src1 = "name: d\nsteps:\n  - { id: a, task: one }\n"
	const src2 = "name: d\nsteps:\n  - { id: a, task: two }\n"
	const src3 = "name: d\nsteps:\n  - { id: a, task: three }\n"
	if _, _, err := s.PutDefinition(ctx, "d", src1, "test", time.Now()); err != nil {
		t.Fatal(err)
	}
	// The first of PutDefinition's two writes of revision 2, without the
	// second (the writer crashed, or its update of d.latest timed out).
	rec := DefinitionRecord{Name: "d", Revision: 2, Source: src2, Hash: HashSource(src2), Created: time.Now().UTC(), PutBy: "test"}
	data, err := msgpack.Marshal(rec)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.defs.Create(ctx, fmt.Sprintf("d.%d", rec.Revision), data); err != nil {
		t.Fatal(err)
	}
	got, changed, err := s.PutDefinition(ctx, "d", src3, "test", time.Now())
	if err != nil {
		t.Fatalf("the definition takes no new revision after a put cut short: %v", err)
	}
	if !changed || got.Revision != 3 {
		t.Fatalf("put = revision %d (changed %v), want revision 3", got.Revision, changed)
	}
	if latest, err := s.GetDefinition(ctx, "d", 0); err != nil || latest.Revision != 3 {
		t.Fatalf("latest = %d, %v; want 3", latest.Revision, err)
	}
}
