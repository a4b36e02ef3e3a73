package image

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/containerd/containerd/v2/core/images"
	"github.com/urfave/cli/v2"
	"k8s.io/apimachinery/pkg/util/duration"
)

// listCommand is `podsup image ls`.
func listCommand() *cli.Command {
	return &cli.Command{
		Name:    "ls",
		Aliases: []string{"list"},
		Usage:   "list images: size, when pulled or imported, when a container was last created from each, and whether one uses it",
		Flags:   append(connectionFlags(), &cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "print only the names"}),
		Action: func(c *cli.Context) error {
			ctx, client, err := connect(c)
			if err != nil {
				return fail("ls", err)
			}
			defer client.Close()
			imgs, err := ContainerdStore{Client: client}.Images(ctx)
			if err != nil {
				return fail("ls", err)
			}
			list, err := client.ImageService().List(ctx)
			if err != nil {
				return fail("ls", err)
			}
			records := map[string]images.Image{}
			for _, im := range list {
				records[im.Name] = im
			}
			printImages(c.App.Writer, imgs, records, c.Bool("quiet"), time.Now())
			return nil
		},
	}
}

// printImages prints one line per image; CREATED is when the image was
// pulled or imported first.
func printImages(w io.Writer, imgs []GCImage, records map[string]images.Image, quiet bool, now time.Time) {
	sort.Slice(imgs, func(i, j int) bool { return imgs[i].Name < imgs[j].Name })
	if quiet {
		for _, im := range imgs {
			fmt.Fprintln(w, im.Name)
		}
		return
	}
	tw := tabwriter.NewWriter(w, 0, 8, 3, ' ', 0)
	fmt.Fprintln(tw, "IMAGE\tDIGEST\tSIZE\tCREATED\tLAST USED\tIN USE")
	for _, im := range imgs {
		last := "never"
		if !im.LastUsed.IsZero() {
			last = ago(now, im.LastUsed)
		}
		inUse := "no"
		if im.InUse {
			inUse = "yes"
		}
		rec := records[im.Name]
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", im.Name, shortDigest(rec.Target.Digest.String()), HumanBytes(im.Size), ago(now, rec.CreatedAt), last, inUse)
	}
	tw.Flush()
}

func ago(now, t time.Time) string { return duration.HumanDuration(now.Sub(t)) + " ago" }

// shortDigest is the first 12 hex digits of a digest, as docker shows it.
func shortDigest(d string) string {
	_, hex, _ := strings.Cut(d, ":")
	if len(hex) > 12 {
		hex = hex[:12]
	}
	return hex
}
