// Command podsup runs Kubernetes static pods on containerd, without an apiserver.
package main

import (
	"fmt"
	"os"

	"github.com/urfave/cli/v2"

	"github.com/podsup/podsup/api/client"
	"github.com/podsup/podsup/daemon"
	"github.com/podsup/podsup/image"
	"github.com/podsup/podsup/manifest"
	"github.com/podsup/podsup/version"
)

func main() {
	app := &cli.App{
		Name:                      "podsup",
		Usage:                     "a standalone static-pod supervisor for containerd",
		Version:                   version.Version,
		DisableSliceFlagSeparator: true, // header values may contain commas
		Commands: []*cli.Command{
			daemon.RunCommand(),
			manifest.ValidateCommand(),
			image.Command(),
			client.PodsCommand(),
			client.DescribeCommand(),
			client.LogsCommand(),
			client.ExecCommand(),
			client.AttachCommand(),
			client.PortForwardCommand(),
			client.EventsCommand(),
			client.ApplyCommand(),
			client.DeleteCommand(),
			version.Command(),
		},
	}
	if err := app.Run(os.Args); err != nil {
		fmt.Fprintln(os.Stderr, "podsup:", err)
		os.Exit(1)
	}
}
