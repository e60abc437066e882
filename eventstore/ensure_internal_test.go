package eventstore

import (
	"testing"

	"github.com/nats-io/nats.go/jetstream"
)

// The history allows direct gets with one replica and never with more,
// whatever it allowed before: the rule is settled in the same create or
// update as the replica count.
func TestDirectWhileAlone(t *testing.T) {
	for _, c := range []struct {
		replicas int
		before   bool
		want     bool
	}{{0, false, true}, {1, false, true}, {1, true, true}, {3, true, false}, {3, false, false}, {5, true, false}} {
		cfg := jetstream.StreamConfig{Replicas: c.replicas, AllowDirect: c.before}
		directWhileAlone(&cfg)
		if cfg.AllowDirect != c.want {
			t.Errorf("%d replicas, direct gets %v before: %v, want %v", c.replicas, c.before, cfg.AllowDirect, c.want)
		}
	}
}
