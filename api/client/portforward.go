package client

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/urfave/cli/v2"
	v1 "k8s.io/api/core/v1"
	"k8s.io/client-go/tools/portforward"
)

// PortForwardCommand is `podsup port-forward POD [LOCAL:]REMOTE...`, like
// `kubectl port-forward`.
func PortForwardCommand() *cli.Command {
	return &cli.Command{
		Name:      "port-forward",
		Usage:     "forward local ports to a pod, as kubectl port-forward does",
		ArgsUsage: "POD [LOCAL:]REMOTE...",
		Flags: withConn(namespaceFlag(),
			&cli.StringSliceFlag{Name: "address", Value: cli.NewStringSlice("localhost"),
				Usage: "`ADDRESS` to listen on (repeatable): localhost listens on 127.0.0.1 and ::1"},
		),
		Action: action("port-forward", runPortForward),
	}
}

func runPortForward(cmd *command) error {
	if len(cmd.args) < 2 {
		return usagef("name a pod and at least one port: podsup port-forward POD [LOCAL:]REMOTE...")
	}
	pod, err := cmd.lookupPod(cmd.ctx, cmd.args[0])
	if err != nil {
		return err
	}
	if pod.Status.Phase != v1.PodRunning {
		return fmt.Errorf("unable to forward port because pod is not running. Current status=%v", pod.Status.Phase)
	}
	ports, err := podPorts(pod, cmd.args[1:])
	if err != nil {
		return err
	}
	path := "/portForward/" + podPath(pod)
	target, err := cmd.client.streamTarget(cmd.ctx, path)
	if err != nil {
		return err
	}
	dialer, err := target.portForwardDialer(path)
	if err != nil {
		return err
	}
	// Its listeners and connections stop when the context ends (Ctrl-C),
	// and ForwardPorts returns then.
	fw, err := portforward.NewOnAddressesWithContext(cmd.ctx, dialer, cmd.cli.StringSlice("address"), ports, nil, cmd.out, cmd.errOut)
	if err != nil {
		return err
	}
	if err := fw.ForwardPorts(); err != nil && cmd.ctx.Err() == nil {
		return err
	}
	return cmd.ctx.Err() // Ctrl-C, maybe while the stream was set up
}

// podPorts turns REMOTE port names into numbers, as kubectl does with the
// ports the pod's containers declare: web:http is web:8080.
func podPorts(p *v1.Pod, specs []string) ([]string, error) {
	out := make([]string, len(specs))
	for i, spec := range specs {
		local, remote, hasLocal := strings.Cut(spec, ":")
		if !hasLocal {
			remote = spec
		}
		if _, err := strconv.Atoi(remote); err == nil || remote == "" {
			out[i] = spec
			continue
		}
		n, ok := namedPort(p, remote)
		if !ok {
			return nil, fmt.Errorf("pod %s does not have a named port %q", p.Name, remote)
		}
		if !hasLocal {
			local = strconv.Itoa(int(n)) // kubectl listens on the number a name stands for
		}
		out[i] = local + ":" + strconv.Itoa(int(n))
	}
	return out, nil
}

func namedPort(p *v1.Pod, name string) (int32, bool) {
	for _, c := range p.Spec.Containers {
		for _, port := range c.Ports {
			if port.Name == name {
				return port.ContainerPort, true
			}
		}
	}
	return 0, false
}
