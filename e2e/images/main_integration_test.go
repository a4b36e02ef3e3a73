//go:build integration

package images

import (
	containerd "github.com/containerd/containerd/v2/client"

	"testing"

	"github.com/podsup/podsup/e2e/harness"
)

func TestMain(m *testing.M) { harness.Main(m) }

// env is the harness's Env with this package's own helpers.
type env struct {
	*harness.Env
	t *testing.T
}

func newEnv(t *testing.T) *env { return &env{harness.NewEnv(t), t} }

func newEnvWith(t *testing.T, address string, client *containerd.Client) *env {
	return &env{harness.NewEnvWith(t, address, client), t}
}
