package main

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// parsePart checks that args, as a deploy file passes them to the weft
// image, name a part of weft and only flags it has, and returns the
// addresses its --metrics-addr and --addr flags give ("" when unset).
func parsePart(t *testing.T, where string, args []string) (metrics, api string) {
	t.Helper()
	if len(args) == 0 {
		t.Fatalf("%s: no arguments", where)
	}
	cmd, rest, err := newRootCmd().Find(args)
	if err != nil || cmd.Name() != args[0] {
		t.Fatalf("%s: %q is not a weft command: %v", where, args[0], err)
	}
	if err := cmd.ParseFlags(rest); err != nil {
		t.Fatalf("%s: weft %s does not take %q: %v", where, args[0], rest, err)
	}
	if f := cmd.Flags().Lookup("metrics-addr"); f != nil {
		metrics = f.Value.String()
	}
	if f := cmd.Flags().Lookup("addr"); f != nil && f.Changed {
		api = f.Value.String()
	}
	return metrics, api
}

func port(t *testing.T, where, addr string) string {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("%s: address %q: %v", where, addr, err)
	}
	return p
}

// The compose file runs weft's parts with flags they have, every part
// but the API serving its metrics on a listener of its own.
func TestDeployComposeRunsRealParts(t *testing.T) {
	b, err := os.ReadFile("../../deploy/compose.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Services map[string]struct {
			Image       string            `yaml:"image"`
			Command     []string          `yaml:"command"`
			Environment map[string]string `yaml:"environment"`
		} `yaml:"services"`
	}
	if err := yaml.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	parts := map[string]bool{}
	for name, s := range f.Services {
		if !strings.HasPrefix(s.Image, "weft:") {
			continue
		}
		metrics, _ := parsePart(t, "compose service "+name, s.Command)
		parts[s.Command[0]] = true
		if s.Command[0] != "api" && metrics == "" {
			t.Errorf("compose service %s: no --metrics-addr: nothing to scrape or probe", name)
		}
		if !strings.Contains(s.Environment["WEFT_NATS_URL"], "nats://") {
			t.Errorf("compose service %s: WEFT_NATS_URL is %q", name, s.Environment["WEFT_NATS_URL"])
		}
	}
	for _, want := range []string{"orchestrator", "executor", "api"} {
		if !parts[want] {
			t.Errorf("compose runs no %s", want)
		}
	}
}

// The Kubernetes manifests run weft's parts with flags they have, and
// probe what each part serves: /metrics on its metrics listener, and the
// API's gRPC health check on its own port.
func TestDeployKubernetesRunsRealParts(t *testing.T) {
	b, err := os.ReadFile("../../deploy/k8s/weft.yaml")
	if err != nil {
		t.Fatal(err)
	}
	type probe struct {
		HTTPGet *struct {
			Path string `yaml:"path"`
			Port string `yaml:"port"`
		} `yaml:"httpGet"`
		GRPC *struct {
			Port int `yaml:"port"`
		} `yaml:"grpc"`
	}
	type container struct {
		Name  string   `yaml:"name"`
		Image string   `yaml:"image"`
		Args  []string `yaml:"args"`
		Ports []struct {
			Name          string `yaml:"name"`
			ContainerPort int    `yaml:"containerPort"`
		} `yaml:"ports"`
		StartupProbe   *probe `yaml:"startupProbe"`
		ReadinessProbe *probe `yaml:"readinessProbe"`
		LivenessProbe  *probe `yaml:"livenessProbe"`
	}
	var doc struct {
		Kind string `yaml:"kind"`
		Spec struct {
			Template struct {
				Spec struct {
					Containers []container `yaml:"containers"`
				} `yaml:"spec"`
			} `yaml:"template"`
		} `yaml:"spec"`
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	parts := map[string]bool{}
	for {
		if err := dec.Decode(&doc); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		for _, c := range doc.Spec.Template.Spec.Containers {
			if !strings.HasPrefix(c.Image, "weft:") {
				continue
			}
			where := doc.Kind + " container " + c.Name
			metrics, api := parsePart(t, where, c.Args)
			parts[c.Args[0]] = true
			ports := map[string]string{}
			for _, p := range c.Ports {
				ports[p.Name] = strconv.Itoa(p.ContainerPort)
			}
			serves := map[string]bool{} // ports that serve /metrics
			if metrics != "" {
				serves[port(t, where, metrics)] = true
			}
			if api != "" && metrics == "" {
				serves[port(t, where, api)] = true
			}
			probes := 0
			for _, p := range []*probe{c.StartupProbe, c.ReadinessProbe, c.LivenessProbe} {
				switch {
				case p == nil:
					continue
				case p.HTTPGet != nil:
					if p.HTTPGet.Path != "/metrics" || !serves[ports[p.HTTPGet.Port]] {
						t.Errorf("%s: probe GET %s on port %s (%s): the part serves /metrics on %v", where, p.HTTPGet.Path, p.HTTPGet.Port, ports[p.HTTPGet.Port], serves)
					}
				case p.GRPC != nil:
					if api == "" || port(t, where, api) != strconv.Itoa(p.GRPC.Port) {
						t.Errorf("%s: gRPC health probe on port %d, but the API listens on %q", where, p.GRPC.Port, api)
					}
				}
				probes++
			}
			if probes == 0 {
				t.Errorf("%s: no probes", where)
			}
		}
		doc.Spec.Template.Spec.Containers = nil
	}
	for _, want := range []string{"orchestrator", "executor", "api"} {
		if !parts[want] {
			t.Errorf("the manifests run no %s", want)
		}
	}
}
