package podspec

import (
	"context"
	"strings"

	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/pkg/oci"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	v1 "k8s.io/api/core/v1"
)

// defaultPath is the PATH of an image that sets no environment, as
// containerd gives it.
const defaultPath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// processArgs are the container's argv as Kubernetes defines them: command
// replaces the image's entrypoint (and drops its cmd), args replace its cmd.
func processArgs(img ocispec.ImageConfig, c *v1.Container) []string {
	switch {
	case len(c.Command) > 0:
		return append(append([]string{}, c.Command...), c.Args...)
	case len(c.Args) > 0:
		return append(append([]string{}, img.Entrypoint...), c.Args...)
	default:
		return append(append([]string{}, img.Entrypoint...), img.Cmd...)
	}
}

// withArgs sets argv, expanding $(VAR) references from the environment.
func withArgs(args []string, env []string) oci.SpecOpts {
	lookup := envLookup(env)
	return func(_ context.Context, _ oci.Client, _ *containers.Container, s *oci.Spec) error {
		out := make([]string, len(args))
		for i, a := range args {
			out[i] = Expand(a, lookup)
		}
		s.Process.Args = out
		return nil
	}
}

// withImageEnv starts the environment from the image's, or from a default
// PATH for an image without one; the container's own comes after it and
// wins.
func withImageEnv(env []string) oci.SpecOpts {
	if len(env) == 0 {
		env = []string{defaultPath}
	}
	return func(_ context.Context, _ oci.Client, _ *containers.Container, s *oci.Spec) error {
		s.Process.Env = append([]string{}, env...)
		return nil
	}
}

// workingDir is the container's workingDir, else the image's, else /.
func workingDir(img ocispec.ImageConfig, c *v1.Container) string {
	switch {
	case c.WorkingDir != "":
		return c.WorkingDir
	case img.WorkingDir != "":
		return img.WorkingDir
	}
	return "/"
}

func withAnnotation(k, v string) oci.SpecOpts {
	return func(_ context.Context, _ oci.Client, _ *containers.Container, s *oci.Spec) error {
		if s.Annotations == nil {
			s.Annotations = map[string]string{}
		}
		s.Annotations[k] = v
		return nil
	}
}

// envLookup looks names up in a KEY=VALUE list; later entries win.
func envLookup(env []string) func(string) (string, bool) {
	m := make(map[string]string, len(env))
	for _, kv := range env {
		if k, v, ok := strings.Cut(kv, "="); ok {
			m[k] = v
		}
	}
	return func(name string) (string, bool) {
		v, ok := m[name]
		return v, ok
	}
}
