//go:build unix && !solaris

package embedded

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// lockFile is the file in the data directory whose lock a running
// embedded server holds.
const lockFile = "weft.lock"

// lockWait is how long a start waits for a lock held: long enough for a
// server that just shut down to let its lock go.
const lockWait = 2 * time.Second

// lockDir takes dir's lock, waiting up to lockWait, and returns the
// function that lets it go. The lock is an flock of dir/weft.lock, which
// the system lets go when the process ends, however it ends. On a file
// system that has no flock (NFS without its lock service, some FUSE
// mounts) the server runs without the lock, as it did before there was
// one.
func lockDir(dir string) (unlock func(), err error) {
	path := filepath.Join(dir, lockFile)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("embedded nats: lock %s: %w", path, err)
	}
	for deadline := time.Now().Add(lockWait); ; time.Sleep(50 * time.Millisecond) {
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil || !errors.Is(err, syscall.EWOULDBLOCK) || time.Now().After(deadline) {
			break
		}
	}
	if errors.Is(err, syscall.ENOLCK) || errors.Is(err, syscall.EOPNOTSUPP) || errors.Is(err, syscall.EINVAL) {
		f.Close()
		return func() {}, nil
	}
	if err != nil {
		holder := ""
		if b, rerr := os.ReadFile(path); rerr == nil && len(strings.TrimSpace(string(b))) > 0 {
			holder = " (process " + strings.TrimSpace(string(b)) + ")"
		}
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("embedded nats: data directory %s is in use by another weft server%s: stop it, or give this one another --data", dir, holder)
		}
		return nil, fmt.Errorf("embedded nats: lock %s: %w", path, err)
	}
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return func() { f.Close() }, nil
}
