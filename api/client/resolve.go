package client

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	v1 "k8s.io/api/core/v1"
)

// errPodNotFound is a pod name that matches no pod.
var errPodNotFound = errors.New("not found")

// podRef parses POD as a user writes it: name, or namespace/name; a bare
// name is in -n's namespace, else in "default".
func podRef(arg, namespace string) (ns, name string, err error) {
	ns, name, qualified := strings.Cut(arg, "/")
	if !qualified {
		ns, name = namespace, arg
		if ns == "" {
			ns = "default"
		}
	}
	switch {
	case ns == "" || name == "" || strings.Contains(name, "/"):
		return "", "", usagef("pod %q: want NAME or NAMESPACE/NAME", arg)
	case qualified && namespace != "" && namespace != ns:
		return "", "", usagef("pod %q is not in namespace %q given by -n", arg, namespace)
	}
	return ns, name, nil
}

// findPod picks the pod a user means by name in a namespace: the pod of
// that exact name; else the static pod declared under it, whose name has
// the node's appended (web -> web-node1); else the only pod named
// name-<something>. Several of those are ambiguous and named in the error.
func findPod(pods []v1.Pod, ns, name string) (*v1.Pod, error) {
	var static, prefixed []*v1.Pod
	for i := range pods {
		p := &pods[i]
		if p.Namespace != ns {
			continue
		}
		switch {
		case p.Name == name:
			return p, nil
		case p.Spec.NodeName != "" && p.Name == name+"-"+p.Spec.NodeName:
			static = append(static, p)
		case strings.HasPrefix(p.Name, name+"-"):
			prefixed = append(prefixed, p)
		}
	}
	if len(static) == 1 {
		return static[0], nil
	}
	candidates := append(static, prefixed...)
	switch len(candidates) {
	case 0:
		return nil, fmt.Errorf("pod %s/%s %w", ns, name, errPodNotFound)
	case 1:
		return candidates[0], nil
	}
	names := make([]string, len(candidates))
	for i, p := range candidates {
		names[i] = p.Name
	}
	sort.Strings(names)
	return nil, fmt.Errorf("pod %q is ambiguous in namespace %s: name one of [%s]", name, ns, strings.Join(names, " "))
}

// lookupPod reads the pods from podsup and finds the one POD names.
func (cmd *command) lookupPod(ctx context.Context, arg string) (*v1.Pod, error) {
	ns, name, err := podRef(arg, cmd.namespace)
	if err != nil {
		return nil, err
	}
	var list v1.PodList
	if err := cmd.client.getJSON(ctx, "/pods", nil, false, &list); err != nil {
		return nil, err
	}
	return findPod(list.Items, ns, name)
}
