package client

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/podsup/podsup/manifest"
)

// ApplyCommand is `podsup apply -f FILE`: it pushes a manifest to podsup,
// which validates it as it validates a file, stores it so its pods survive
// a restart, and runs them.
func ApplyCommand() *cli.Command {
	return &cli.Command{
		Name:  "apply",
		Usage: "push a manifest (a Pod, a PodList, or several documents with ConfigMaps and Secrets) to podsup",
		Description: "The manifest is stored under a name: the file's, without its extension and made a DNS label,\n" +
			"or --name. Applying the same name again replaces it; podsup delete NAME removes it and its pods.",
		Flags: withConn(
			&cli.StringSliceFlag{Name: "filename", Aliases: []string{"f"}, Usage: "manifest `FILE` to push; - reads standard input (then give --name)"},
			&cli.StringFlag{Name: "name", Usage: "store the manifest as `NAME` (a DNS label) instead of the file's name"},
		),
		Action: action("apply", runApply),
	}
}

// DeleteCommand is `podsup delete NAME`: it removes a pushed manifest, and
// so its pods.
func DeleteCommand() *cli.Command {
	return &cli.Command{
		Name:      "delete",
		Usage:     "remove a pushed manifest and its pods",
		ArgsUsage: "NAME...",
		Flags: withConn(
			&cli.StringSliceFlag{Name: "filename", Aliases: []string{"f"}, Usage: "remove the manifest pushed from `FILE` (the name apply gave it)"},
			&cli.BoolFlag{Name: "ignore-not-found", Usage: "succeed when there is no such manifest"},
		),
		Action: action("delete", runDelete),
	}
}

// maxApplyBytes bounds a manifest read to be pushed, as podsup bounds it.
const maxApplyBytes = manifest.MaxManifestBytes

// applyResult is podsup's answer to PUT /manifests/{name}.
type applyResult struct {
	Manifest string   `json:"manifest"`
	Pods     []string `json:"pods"`
	Warnings []string `json:"warnings"`
}

func runApply(cmd *command) error {
	files := cmd.cli.StringSlice("filename")
	name := cmd.cli.String("name")
	switch {
	case len(cmd.args) > 0:
		return usagef("unexpected argument %q; give the manifest with -f FILE", cmd.args[0])
	case len(files) == 0:
		return usagef("give the manifest with -f FILE")
	case name != "" && len(files) > 1:
		return usagef("--name names one manifest; give one -f")
	}
	for _, file := range files {
		if err := cmd.apply(file, name); err != nil {
			return err
		}
	}
	return nil
}

func (cmd *command) apply(file, name string) error {
	if name == "" {
		var err error
		if name, err = ManifestName(file); err != nil {
			return err
		}
	} else if err := manifest.CheckPushName(name); err != nil {
		return usagef("--name: %v", err)
	}
	data, err := readManifest(file, os.Stdin)
	if err != nil {
		return err
	}
	var res applyResult
	r := request{method: http.MethodPut, path: "/manifests/" + url.PathEscape(name), body: data, full: true}
	if err := cmd.client.call(cmd.ctx, r, &res); err != nil {
		return fmt.Errorf("%s: %w", displayFile(file), err)
	}
	var pods []string
	for _, p := range res.Pods {
		pods = append(pods, "pod "+p)
	}
	if len(pods) == 0 {
		pods = []string{"no pods"}
	}
	fmt.Fprintf(cmd.out, "manifest %s applied: %s\n", name, strings.Join(pods, ", "))
	for _, w := range res.Warnings {
		fmt.Fprintf(cmd.errOut, "Warning: %s\n", w)
	}
	return nil
}

func displayFile(file string) string {
	if file == "-" {
		return "standard input"
	}
	return file
}

// readManifest reads a manifest file, or stdin for "-", refusing one larger
// than podsup would take.
func readManifest(file string, stdin io.Reader) ([]byte, error) {
	r := stdin
	if file != "-" {
		f, err := os.Open(file)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		r = f
	}
	data, err := io.ReadAll(io.LimitReader(r, maxApplyBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", displayFile(file), err)
	}
	if len(data) > maxApplyBytes {
		return nil, fmt.Errorf("%s: larger than %d bytes", displayFile(file), maxApplyBytes)
	}
	return data, nil
}

// ManifestName is the name `podsup apply -f FILE` stores FILE under: its
// base name without extension, lowercased, with every run of characters a
// DNS label cannot hold made a dash.
func ManifestName(file string) (string, error) {
	if file == "-" {
		return "", usagef("-f - reads standard input: name the manifest with --name")
	}
	base := filepath.Base(file)
	for _, ext := range []string{".yaml", ".yml", ".json"} {
		if strings.HasSuffix(strings.ToLower(base), ext) {
			base = base[:len(base)-len(ext)]
			break
		}
	}
	var b strings.Builder
	dash := false
	for _, r := range strings.ToLower(base) {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			b.WriteRune(r)
			dash = false
		} else if !dash && b.Len() > 0 {
			b.WriteByte('-')
			dash = true
		}
	}
	name := strings.TrimRight(b.String(), "-")
	if len(name) > 63 {
		name = strings.TrimRight(name[:63], "-")
	}
	if manifest.CheckPushName(name) != nil {
		return "", usagef("cannot make a manifest name of %q: give one with --name", file)
	}
	return name, nil
}

func runDelete(cmd *command) error {
	names := cmd.args
	for _, file := range cmd.cli.StringSlice("filename") {
		name, err := ManifestName(file)
		if err != nil {
			return err
		}
		names = append(names, name)
	}
	if len(names) == 0 {
		return usagef("name the manifest to delete: podsup delete NAME, or -f FILE")
	}
	for _, name := range names {
		if err := manifest.CheckPushName(name); err != nil {
			return usagef("%v", err)
		}
		r := request{method: http.MethodDelete, path: "/manifests/" + url.PathEscape(name), full: true}
		var res struct{}
		err := cmd.client.call(cmd.ctx, r, &res)
		switch {
		case IsNotFound(err) && cmd.cli.Bool("ignore-not-found"):
			continue
		case IsNotFound(err):
			return cmd.notPushed(name)
		case err != nil:
			return fmt.Errorf("delete manifest %s: %w", name, err)
		}
		fmt.Fprintf(cmd.out, "manifest %s deleted\n", name)
	}
	return nil
}

// notPushed explains a delete of a name that was never pushed: it lists
// those that were, as the name may be a pod's or a file's.
func (cmd *command) notPushed(name string) error {
	var list struct {
		Manifests []string `json:"manifests"`
	}
	if err := cmd.client.getJSON(cmd.ctx, "/manifests", nil, true, &list); err != nil {
		return fmt.Errorf("manifest %q not found: %w", name, err)
	}
	if len(list.Manifests) == 0 {
		return fmt.Errorf("manifest %q not found: no manifest is pushed (pods from manifest files go when their file is removed)", name)
	}
	return fmt.Errorf("manifest %q not found; pushed manifests: %s (pods from manifest files go when their file is removed)", name, strings.Join(list.Manifests, ", "))
}
