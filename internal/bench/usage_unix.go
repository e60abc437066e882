//go:build unix

package bench

import (
	"runtime"
	"syscall"
)

// processUsage returns this process's CPU time so far (user and system,
// in seconds) and its peak RSS in MiB.
func processUsage() (cpu, peakRSSMB float64) {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0, 0
	}
	tv := func(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }
	rss := float64(ru.Maxrss) / 1024 // KiB on Linux and the BSDs
	if runtime.GOOS == "darwin" || runtime.GOOS == "ios" {
		rss /= 1024 // bytes there
	}
	return tv(ru.Utime) + tv(ru.Stime), rss
}
