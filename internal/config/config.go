// Package config holds the defaults-and-checks code the parts' Config
// types share: a zero field takes its default, a negative count is
// refused with one wording everywhere.
package config

import (
	"fmt"
	"time"
)

// Default sets *field to def when it holds its zero value.
func Default[T comparable](field *T, def T) {
	var zero T
	if *field == zero {
		*field = def
	}
}

// DefaultClock sets *now to time.Now when it is nil.
func DefaultClock(now *func() time.Time) {
	if *now == nil {
		*now = time.Now
	}
}

// Field is a named count of a Config, for NonNegative.
type Field struct {
	name  string
	value int
}

// Int names a count of a Config.
func Int(name string, value int) Field { return Field{name, value} }

// NonNegative returns an error for the first of fields that is negative,
// as "<part>: <field> must not be negative, got <value>".
func NonNegative(part string, fields ...Field) error {
	for _, f := range fields {
		if f.value < 0 {
			return fmt.Errorf("%s: %s must not be negative, got %d", part, f.name, f.value)
		}
	}
	return nil
}
