package version

import (
	"fmt"
	"runtime"

	"github.com/urfave/cli/v2"
)

// Command is `podsup version`.
func Command() *cli.Command {
	return &cli.Command{
		Name:  "version",
		Usage: "print podsup's version",
		Action: func(c *cli.Context) error {
			fmt.Fprintf(c.App.Writer, "podsup %s (%s, %s/%s)\n", Version, runtime.Version(), runtime.GOOS, runtime.GOARCH)
			return nil
		},
	}
}
