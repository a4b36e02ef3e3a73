package image

import (
	"fmt"
	"sort"
	"strings"

	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/errdefs"
	"github.com/urfave/cli/v2"
)

// removeCommand is `podsup image rm REF...`.
func removeCommand() *cli.Command {
	return &cli.Command{
		Name:      "rm",
		Aliases:   []string{"remove", "rmi"},
		Usage:     "remove images; one a container uses is kept unless --force",
		ArgsUsage: "REF...",
		Flags:     append(connectionFlags(), &cli.BoolFlag{Name: "force", Aliases: []string{"f"}, Usage: "remove images containers use (they keep running)"}),
		Action: func(c *cli.Context) error {
			if c.NArg() == 0 {
				return cli.Exit("podsup image rm: name at least one image", 2)
			}
			ctx, client, err := connect(c)
			if err != nil {
				return fail("rm", err)
			}
			defer client.Close()
			containers, err := client.ContainerService().List(ctx)
			if err != nil {
				return fail("rm", err)
			}
			users := map[string][]string{}
			for _, ct := range containers {
				users[ct.Image] = append(users[ct.Image], ct.ID)
			}
			failed := 0
			for _, ref := range c.Args().Slice() {
				name := normalizeOrSelf(ref)
				if u := users[name]; len(u) > 0 && !c.Bool("force") {
					sort.Strings(u)
					fmt.Fprintf(c.App.ErrWriter, "podsup image rm: %s is used by %d container(s) (%s); --force removes it anyway\n", name, len(u), strings.Join(u, ", "))
					failed++
					continue
				}
				err := client.ImageService().Delete(ctx, name, images.SynchronousDelete())
				switch {
				case errdefs.IsNotFound(err):
					fmt.Fprintf(c.App.ErrWriter, "podsup image rm: %s: no such image\n", name)
					failed++
				case err != nil:
					fmt.Fprintf(c.App.ErrWriter, "podsup image rm: %s: %v\n", name, err)
					failed++
				default:
					fmt.Fprintf(c.App.Writer, "removed %s\n", name)
				}
			}
			if failed > 0 {
				return cli.Exit(fmt.Sprintf("podsup image rm: %d of %d images not removed", failed, c.NArg()), 1)
			}
			return nil
		},
	}
}
