package definition

import (
	"math"
	"time"

	"github.com/robfig/cron/v3"
)

// allHours are the bits of a cron hour field that fires every hour.
const allHours = 1<<24 - 1

// zoned returns the schedule s in loc. A schedule that fires at specific
// hours follows the wall clock across daylight-saving changes, as cron
// does: a time the clock skips fires once at the instant of the jump, and
// a time the clock repeats fires once, at its first occurrence. A schedule
// that fires every hour fires at each real hour instead, the repeated one
// included.
func zoned(s *cron.SpecSchedule, loc *time.Location) cron.Schedule {
	s.Location = loc
	if s.Hour&allHours == allHours {
		return s
	}
	wall := *s
	wall.Location = time.UTC
	return &wallSchedule{wall: &wall, loc: loc}
}

// wallSchedule is a schedule of wall-clock times in a time zone.
type wallSchedule struct {
	// wall matches the wall-clock readings, written as UTC times.
	wall *cron.SpecSchedule
	loc  *time.Location
}

// zoneWindow bounds how far from an instant the zone periods that matter
// to its wall-clock reading lie: more than any offset and any change.
const zoneWindow = 36 * time.Hour

// Next returns the first tick after t, in t's location, or the zero time
// when there is none within five years.
func (s *wallSchedule) Next(t time.Time) time.Time {
	// Ticks grow with the readings, and a reading whose tick is after t
	// comes after t plus the least UTC offset around t: walk the readings
	// from there to the first whose tick is after t.
	least := math.MaxInt
	s.periods(t, func(_, _ time.Time, off int) bool {
		least = min(least, off)
		return true
	})
	w := s.wall.Next(t.UTC().Add(time.Duration(least) * time.Second))
	for !w.IsZero() {
		if tick := s.tick(w); tick.After(t) {
			return tick.In(t.Location())
		}
		w = s.wall.Next(w)
	}
	return time.Time{}
}

// tick returns the instant the reading w (as UTC) fires: the first instant
// the clock shows w, or the instant of the jump that skips w.
func (s *wallSchedule) tick(w time.Time) time.Time {
	var out time.Time
	prev, started := 0, false
	s.periods(w, func(start, end time.Time, off int) bool {
		at := w.Add(-time.Duration(off) * time.Second)
		switch {
		case (start.IsZero() || !at.Before(start)) && (end.IsZero() || at.Before(end)):
			out = at
			return false
		case started && off > prev && !start.IsZero() && !w.Before(start.Add(time.Duration(prev)*time.Second)) &&
			w.Before(start.Add(time.Duration(off)*time.Second)):
			out = start // the clock jumped over w at start
			return false
		}
		prev, started = off, true
		return true
	})
	return out
}

// periods calls fn with the bounds (zero when unbounded) and UTC offset of
// each zone period of s.loc that overlaps zoneWindow around t, in order,
// until fn returns false.
func (s *wallSchedule) periods(t time.Time, fn func(start, end time.Time, off int) bool) {
	at, last := t.Add(-zoneWindow).In(s.loc), t.Add(zoneWindow)
	for {
		_, off := at.Zone()
		start, end := at.ZoneBounds()
		if !fn(start, end, off) || end.IsZero() || end.After(last) {
			return
		}
		at = end.In(s.loc)
	}
}
