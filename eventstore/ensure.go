package eventstore

import (
	"context"
	"errors"
	"reflect"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Every part opens the store at start, and a deployment starts its parts
// together: on a fresh cluster several of them set up the same streams,
// buckets and consumers at once. Each is therefore looked up first and
// created only when missing, a creation that loses the race to another
// part is taken as done, and one that exists is updated only when it
// lacks a setting of ours (an upgrade, a new replica count): changes go
// through the cluster's meta leader one at a time, and a part that updated
// everything on every start queued the others behind it. Each try (a
// look-up, then a creation or update when needed) is bounded by
// requestTimeout, and one that times out, or finds the cluster without a
// leader, is made again soon, up to retryFor, rather than waited out: a
// creation that went through is then found by the look-up.
const (
	requestTimeout = 2 * time.Second
	retryFor       = 30 * time.Second
)

// transient reports whether err, from a request to JetStream, may go away
// on its own: a timeout, no responder yet, or a cluster without a leader.
func transient(err error) bool {
	var apiErr *jetstream.APIError
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout) ||
		errors.Is(err, nats.ErrNoResponders) || errors.As(err, &apiErr) && apiErr.Code == 503
}

// retry calls fn, each call bounded by requestTimeout, until it succeeds,
// fails for good, ctx ends or retryFor passes.
func retry[T any](ctx context.Context, fn func(ctx context.Context) (T, error)) (T, error) {
	wait, deadline := 100*time.Millisecond, time.Now().Add(retryFor)
	for {
		rctx, cancel := context.WithTimeout(ctx, requestTimeout)
		v, err := fn(rctx)
		cancel()
		if err == nil || !transient(err) || ctx.Err() != nil || time.Now().After(deadline) {
			return v, err
		}
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return v, err
		}
		wait = min(2*wait, time.Second)
	}
}

// overlay returns have with every field want sets (non-zero) taken from
// want.
func overlay[T any](want, have T) T {
	w, h := reflect.ValueOf(want), reflect.ValueOf(&have).Elem()
	for i := range w.NumField() {
		if f := w.Field(i); !f.IsZero() {
			h.Field(i).Set(f)
		}
	}
	return have
}

// lacks reports whether have differs from want in a field want sets.
func lacks[T any](want, have T) bool { return !reflect.DeepEqual(overlay(want, have), have) }

// ensureStream returns stream want.Name, creating it when missing and
// updating it when it lacks a setting of want. Subjects, when want has
// none, are initial's on creation and left as they are otherwise;
// want.FirstSeq is for the creation only. fix, if
// set, settles what depends on the rest of the config (with want's
// settings over the stream's) in the same create or update.
func (s *Store) ensureStream(ctx context.Context, want jetstream.StreamConfig, initial []string, fix func(*jetstream.StreamConfig)) (jetstream.Stream, error) {
	settle := func(c jetstream.StreamConfig) jetstream.StreamConfig {
		if fix != nil {
			fix(&c)
		}
		return c
	}
	return retry(ctx, func(ctx context.Context) (jetstream.Stream, error) {
		st, err := s.js.Stream(ctx, want.Name)
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			create := want
			if len(create.Subjects) == 0 {
				create.Subjects = initial
			}
			st, err = s.js.CreateStream(ctx, settle(create))
			if !errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
				return st, err
			}
			// Another part created it meanwhile.
			st, err = s.js.Stream(ctx, want.Name)
		}
		if err != nil {
			return nil, err
		}
		have := st.CachedInfo().Config
		keep := want
		keep.FirstSeq = 0
		if next := settle(overlay(keep, have)); !reflect.DeepEqual(next, have) {
			return s.js.UpdateStream(ctx, next)
		}
		return st, nil
	})
}

// ensureConsumer makes sure stream has the durable consumer want,
// creating it when missing and updating it when it lacks a setting of
// want. With keepLongerAckWait, an ack wait longer than want's that the
// consumer has is kept (see EnsureTaskConsumer).
func (s *Store) ensureConsumer(ctx context.Context, stream string, want jetstream.ConsumerConfig, keepLongerAckWait bool) error {
	_, err := retry(ctx, func(ctx context.Context) (jetstream.Consumer, error) {
		c, err := s.js.Consumer(ctx, stream, want.Durable)
		if errors.Is(err, jetstream.ErrConsumerNotFound) {
			c, err = s.js.CreateConsumer(ctx, stream, want)
			if !errors.Is(err, jetstream.ErrConsumerExists) {
				return c, err
			}
			// Another part created it meanwhile, set otherwise.
			c, err = s.js.Consumer(ctx, stream, want.Durable)
		}
		if err != nil {
			return nil, err
		}
		have := c.CachedInfo().Config
		if want := want; keepLongerAckWait && have.AckWait > want.AckWait {
			want.AckWait = have.AckWait
			if lacks(want, have) {
				return s.js.UpdateConsumer(ctx, stream, overlay(want, have))
			}
			return c, nil
		}
		if lacks(want, have) {
			return s.js.UpdateConsumer(ctx, stream, overlay(want, have))
		}
		return c, nil
	})
	return err
}

// ensureBucket returns key-value bucket want.Bucket, creating it when
// missing and updating it when its replicas or description differ.
func (s *Store) ensureBucket(ctx context.Context, want jetstream.KeyValueConfig) (jetstream.KeyValue, error) {
	kv, _, err := s.ensureTTLBucket(ctx, want, false)
	return kv, err
}

// ensureTTLBucket is ensureBucket that, with ttl, also lets the bucket's
// messages carry a TTL (AllowMsgTTL: entries written to go, and delete
// markers that go), and reports whether it does (not before NATS 2.11).
// Messages that expire are removed by their sequence, and no marker is
// put in their place (the bucket has no LimitMarkerTTL): a marker the
// server puts when an entry expires would also roll up a write acked
// just before it. The stream is changed by its own config with ours laid
// over it, so settings an operator tuned (MaxBytes, compression,
// placement) stay; JetStream never turns AllowMsgTTL off again.
func (s *Store) ensureTTLBucket(ctx context.Context, want jetstream.KeyValueConfig, ttl bool) (jetstream.KeyValue, bool, error) {
	var allowed bool
	kv, err := retry(ctx, func(ctx context.Context) (jetstream.KeyValue, error) {
		name := "KV_" + want.Bucket
		st, err := s.js.Stream(ctx, name)
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			// Another part may create it meanwhile, as an earlier
			// version would: either way it is then laid over below.
			if _, err := s.js.CreateKeyValue(ctx, want); err != nil && !errors.Is(err, jetstream.ErrBucketExists) {
				return nil, err
			}
			st, err = s.js.Stream(ctx, name)
		}
		if err != nil {
			return nil, err
		}
		have := st.CachedInfo().Config
		next := have
		next.Replicas, next.Description = want.Replicas, want.Description
		next.AllowMsgTTL = have.AllowMsgTTL || ttl
		if ttl {
			// A bucket made by an earlier version puts a marker in
			// place of an expired entry (LimitMarkerTTL); one rolls up
			// a write acked just before it, so it goes.
			next.SubjectDeleteMarkerTTL = 0
		}
		if !reflect.DeepEqual(next, have) {
			updated, err := s.js.UpdateStream(ctx, next)
			if err != nil && next.AllowMsgTTL && !have.AllowMsgTTL && !transient(err) {
				// A server that cannot keep message TTLs: the bucket
				// goes on without them.
				next.AllowMsgTTL = false
				if reflect.DeepEqual(next, have) {
					updated, err = st, nil
				} else {
					updated, err = s.js.UpdateStream(ctx, next)
				}
			}
			if err != nil {
				return nil, err
			}
			st = updated
		}
		allowed = st.CachedInfo().Config.AllowMsgTTL
		return s.js.KeyValue(ctx, want.Bucket)
	})
	return kv, allowed, err
}
