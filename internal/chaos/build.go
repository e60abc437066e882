package chaos

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Binaries are the programs a chaos run starts.
type Binaries struct {
	// Weft is the weft binary (cmd/weft of this module).
	Weft string
	// NATSServer is the nats-server binary of the version in go.mod.
	NATSServer string
	// Chaos is the weft-chaos binary (cmd/weft-chaos), whose hidden
	// executor subcommand runs the beat shape's executors.
	Chaos string
}

// Build compiles the weft and weft-chaos binaries and the nats-server of
// the version this module requires into dir, from the module root (found
// with go env GOMOD), so the processes under test are the real programs.
func Build(ctx context.Context, dir string) (Binaries, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return Binaries{}, err
	}
	root, err := moduleRoot(ctx)
	if err != nil {
		return Binaries{}, err
	}
	b := Binaries{Weft: filepath.Join(dir, "weft"), NATSServer: filepath.Join(dir, "nats-server"),
		Chaos: filepath.Join(dir, "weft-chaos")}
	for _, target := range []struct{ out, pkg string }{
		{b.Weft, "./cmd/weft"},
		{b.Chaos, "./cmd/weft-chaos"},
		{b.NATSServer, "github.com/nats-io/nats-server/v2"},
	} {
		cmd := exec.CommandContext(ctx, "go", "build", "-o", target.out, target.pkg)
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			return Binaries{}, fmt.Errorf("go build %s: %v\n%s", target.pkg, err, out)
		}
	}
	return b, nil
}

// moduleRoot returns the directory of the go.mod of the current module.
func moduleRoot(ctx context.Context) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", fmt.Errorf("go env GOMOD: not inside a module (run from the weft checkout)")
	}
	return filepath.Dir(gomod), nil
}
