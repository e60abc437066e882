//go:build !unix

package bench

// processUsage is not measured here: the bench reports no CPU time or
// peak RSS on this system.
func processUsage() (cpu, peakRSSMB float64) { return 0, 0 }
