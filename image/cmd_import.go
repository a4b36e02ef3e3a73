package image

import (
	"fmt"
	"time"

	"github.com/urfave/cli/v2"
)

// importCommand is `podsup image import FILE...`.
func importCommand() *cli.Command {
	return &cli.Command{
		Name:      "import",
		Aliases:   []string{"load"},
		Usage:     "import OCI or docker archives (gzip, zstd or uncompressed; - for standard input)",
		ArgsUsage: "FILE...",
		Flags:     connectionFlags(),
		Action: func(c *cli.Context) error {
			if c.NArg() == 0 {
				return cli.Exit("podsup image import: name at least one archive", 2)
			}
			ctx, client, err := connect(c)
			if err != nil {
				return fail("import", err)
			}
			defer client.Close()
			failed := 0
			for _, path := range c.Args().Slice() {
				start := time.Now()
				imgs, err := ImportFile(ctx, client, DefaultSnapshotter, path, nil)
				for _, im := range imgs {
					fmt.Fprintf(c.App.Writer, "%s: imported %s (%s, %s) in %s\n", path, im.Name, shortDigest(im.Digest.String()),
						HumanBytes(im.Size), time.Since(start).Round(time.Millisecond))
				}
				if err != nil {
					fmt.Fprintf(c.App.ErrWriter, "podsup image import: %v\n", err)
					failed++
				}
			}
			if failed > 0 {
				return cli.Exit(fmt.Sprintf("podsup image import: %d of %d archives failed", failed, c.NArg()), 1)
			}
			return nil
		},
	}
}
