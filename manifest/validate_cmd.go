package manifest

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/urfave/cli/v2"
	v1 "k8s.io/api/core/v1"
)

// ValidateCommand is `podsup validate PATH...`: it checks manifest files and
// directories exactly as `podsup run` would read them, prints every problem
// and exits non-zero if there is one. With none, it prints one line per pod.
// It never prints a Secret's values.
func ValidateCommand() *cli.Command {
	return &cli.Command{
		Name:      "validate",
		Usage:     "check manifests as podsup run would read them",
		ArgsUsage: "PATH...",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "node-name", Value: DefaultNodeName(), EnvVars: []string{"PODSUP_NODE_NAME"}, Usage: "node name appended to pod names"},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() == 0 {
				return cli.Exit("podsup validate: name at least one manifest file or directory", 2)
			}
			st := Static{NodeName: c.String("node-name"), Source: SourceFile}
			if n := Validate(c.App.Writer, c.App.ErrWriter, st, c.Args().Slice()...); n > 0 {
				return cli.Exit(fmt.Sprintf("%d problem(s) found", n), 1)
			}
			return nil
		},
	}
}

// Validate checks the manifests at paths (files, or directories read as the
// directory source reads them), writes a summary line per object to out and
// every problem and warning to errOut, and returns the number of problems.
func Validate(out, errOut io.Writer, st Static, paths ...string) int {
	problems := 0
	owners := map[string]string{}
	for _, p := range paths {
		files, err := manifestFiles(p)
		if err != nil {
			fmt.Fprintf(errOut, "%s: %v\n", p, err)
			problems++
			continue
		}
		for _, file := range files {
			data, err := readManifestFile(file)
			if err != nil {
				fmt.Fprintf(errOut, "%v\n", err)
				problems++
				continue
			}
			objs, err := Parse(file, data, st)
			if err != nil {
				var list ErrorList
				if errors.As(err, &list) {
					problems += len(list)
				} else {
					problems++
				}
				fmt.Fprintln(errOut, err)
				continue
			}
			for _, w := range objs.Warnings {
				fmt.Fprintf(errOut, "warning: %v\n", w)
			}
			for _, pod := range objs.Pods {
				key := PodKey(pod)
				if first, dup := owners[key]; dup {
					fmt.Fprintf(errOut, "%s: pod %s: metadata.name: already declared by %s, which comes first; this one would be ignored\n", file, key, first)
					problems++
					continue
				}
				owners[key] = file
				fmt.Fprintf(out, "%s: pod %s: %s\n", file, key, podSummary(pod))
			}
			for _, cm := range objs.ConfigMaps {
				fmt.Fprintf(out, "%s: configmap %s: %d keys\n", file, Key(cm.Namespace, cm.Name), len(cm.Data)+len(cm.BinaryData))
			}
			for _, s := range objs.Secrets {
				fmt.Fprintf(out, "%s: secret %s: %s, %d keys\n", file, Key(s.Namespace, s.Name), s.Type, len(s.Data))
			}
		}
	}
	return problems
}

// manifestFiles lists what the directory source would read at p: p itself if
// it is a file, else its manifest-named entries in lexical order.
func manifestFiles(p string) ([]string, error) {
	info, err := os.Stat(p)
	if err != nil {
		return nil, err
	}
	if !info.IsDir() {
		return []string{p}, nil
	}
	entries, err := os.ReadDir(p)
	if err != nil {
		return nil, err
	}
	var files []string
	for _, e := range entries {
		if IsManifestName(e.Name()) {
			files = append(files, filepath.Join(p, e.Name()))
		}
	}
	sort.Strings(files)
	return files, nil
}

func podSummary(pod *v1.Pod) string {
	var images []string
	for _, c := range pod.Spec.InitContainers {
		images = append(images, c.Name+"="+c.Image+" (init)")
	}
	for _, c := range pod.Spec.Containers {
		images = append(images, c.Name+"="+c.Image)
	}
	net := "pod network"
	if pod.Spec.HostNetwork {
		net = "host network"
	}
	return fmt.Sprintf("ok, %d container(s), %s, restartPolicy %s, uid %s: %s",
		len(pod.Spec.InitContainers)+len(pod.Spec.Containers), net, pod.Spec.RestartPolicy, pod.UID, strings.Join(images, ", "))
}

// DefaultNodeName is the host name, lowercased, as the kubelet defaults it.
func DefaultNodeName() string {
	h, err := os.Hostname()
	if err != nil || h == "" {
		return "localhost"
	}
	return strings.ToLower(h)
}
