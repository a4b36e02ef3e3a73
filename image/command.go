package image

import (
	"context"
	"fmt"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/urfave/cli/v2"
)

// Command is `podsup image`: import, list and remove images in podsup's
// containerd namespace, with no registry and no running podsup.
func Command() *cli.Command {
	return &cli.Command{
		Name:        "image",
		Aliases:     []string{"images"},
		Usage:       "import, list and remove the images of podsup's containerd namespace",
		Subcommands: []*cli.Command{importCommand(), listCommand(), removeCommand()},
	}
}

// connectionFlags are the flags of `podsup run` that say where the images
// are, with the same names and environment variables.
func connectionFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "containerd-address", Value: "/run/containerd/containerd.sock", Usage: "containerd's socket", EnvVars: []string{"PODSUP_CONTAINERD_ADDRESS"}},
		&cli.StringFlag{Name: "containerd-namespace", Value: "podsup", Usage: "containerd namespace of podsup's containers and images", EnvVars: []string{"PODSUP_CONTAINERD_NAMESPACE"}},
	}
}

// connect returns a client and a context in the namespace the flags name.
func connect(c *cli.Context) (context.Context, *containerd.Client, error) {
	addr, ns := c.String("containerd-address"), c.String("containerd-namespace")
	client, err := containerd.New(addr, containerd.WithDefaultNamespace(ns), containerd.WithTimeout(10*time.Second))
	if err != nil {
		return nil, nil, fmt.Errorf("containerd at %s: %w", addr, err)
	}
	return namespaces.WithNamespace(c.Context, ns), client, nil
}

// fail ends a command with its name and the error, exit status 1.
func fail(verb string, err error) error {
	return cli.Exit(fmt.Sprintf("podsup image %s: %v", verb, err), 1)
}
