//go:build !unix || solaris

package embedded

// lockDir takes no lock where flock is not available.
func lockDir(string) (func(), error) { return func() {}, nil }
