package client

import (
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/urfave/cli/v2"
	v1 "k8s.io/api/core/v1"
	"k8s.io/client-go/tools/remotecommand"
	utilexec "k8s.io/utils/exec"

	"github.com/podsup/podsup/podspec"
)

// streamOptions say how exec and attach reach podsup; tests force each
// protocol.
type streamOptions struct {
	protocol    streamProtocol
	wsProtocols []string // WebSocket subprotocols offered, best first
}

// defaultStreams is kubectl's: WebSocket v5.channel.k8s.io, else SPDY.
var defaultStreams = streamOptions{protocol: protocolAuto, wsProtocols: []string{"v5.channel.k8s.io"}}

// remoteExit is the exit status of a command run in a container; podsup
// exec exits with it, as kubectl exec does.
type remoteExit struct{ code int }

func (e remoteExit) Error() string {
	return fmt.Sprintf("command terminated with exit code %d", e.code)
}

// ExitCode is the remote command's exit status.
func (e remoteExit) ExitCode() int { return e.code }

var _ cli.ExitCoder = remoteExit{}

func streamFlags() []cli.Flag {
	return []cli.Flag{
		namespaceFlag(),
		&cli.StringFlag{Name: "container", Aliases: []string{"c"}, Usage: "`NAME` of the container (default: the pod's default or only one)"},
		&cli.BoolFlag{Name: "stdin", Aliases: []string{"i"}, Usage: "pass stdin to the container"},
		&cli.BoolFlag{Name: "tty", Aliases: []string{"t"}, Usage: "stdin is a TTY"},
		&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "only print output from the remote session"},
	}
}

// ExecCommand is `podsup exec POD -- COMMAND`, like `kubectl exec`.
func ExecCommand() *cli.Command { return execCommand(defaultStreams) }

func execCommand(o streamOptions) *cli.Command {
	return streamCommand("exec", "run a command in a container, as kubectl exec does",
		"POD [-c CONTAINER] [-i] [-t] -- COMMAND [ARGS...]", func(cmd *command) error { return runExec(cmd, o) })
}

// AttachCommand is `podsup attach POD`, like `kubectl attach`.
func AttachCommand() *cli.Command { return attachCommand(defaultStreams) }

func attachCommand(o streamOptions) *cli.Command {
	return streamCommand("attach", "attach to the process of a running container, as kubectl attach does",
		"POD [-c CONTAINER] [-i] [-t]", func(cmd *command) error { return runAttach(cmd, o) })
}

func streamCommand(name, usage, argsUsage string, run func(*command) error) *cli.Command {
	return &cli.Command{
		Name: name, Usage: usage, ArgsUsage: argsUsage,
		Flags:                  withConn(streamFlags()...),
		UseShortOptionHandling: true, // -it, as kubectl users type it
		Action:                 action(name, run),
	}
}

func runExec(cmd *command, o streamOptions) error {
	switch {
	case len(cmd.args) == 0:
		return usagef("name a pod and a command: podsup exec POD -- COMMAND [ARGS...]")
	case cmd.dash < 0 && len(cmd.args) > 1:
		return usagef("exec POD COMMAND is not supported: give the command after --: podsup exec %s -- %s", cmd.args[0], strings.Join(cmd.args[1:], " "))
	case cmd.dash != 1 || len(cmd.args) < 2:
		return usagef("name one pod, then the command after --: podsup exec POD -- COMMAND [ARGS...]")
	}
	pod, container, err := cmd.streamPod("exec")
	if err != nil {
		return err
	}
	r := cmd.remote(cmd.cli.Bool("stdin"), cmd.cli.Bool("tty"))
	query := r.query()
	query["command"] = cmd.args[1:]
	err = r.run(cmd, o, "/exec/"+podPath(pod)+"/"+url.PathEscape(container), query)
	var exitErr utilexec.ExitError
	if errors.As(err, &exitErr) && exitErr.Exited() {
		return remoteExit{code: exitErr.ExitStatus()}
	}
	return err
}

func runAttach(cmd *command, o streamOptions) error {
	if len(cmd.args) != 1 {
		return usagef("name one pod: podsup attach POD [-c CONTAINER] [-i] [-t]")
	}
	pod, container, err := cmd.streamPod("attach")
	if err != nil {
		return err
	}
	tty := cmd.cli.Bool("tty")
	spec := podspec.ContainerNamed(pod, container)
	quiet := cmd.cli.Bool("quiet")
	switch {
	case tty && spec != nil && !spec.TTY:
		tty = false
		if !quiet {
			fmt.Fprintf(cmd.errOut, "Unable to use a TTY - container %s did not allocate one\n", container)
		}
	case !tty && spec != nil && spec.TTY:
		// The container's output is a terminal's, which only a TTY
		// stream carries, as kubectl forces it.
		tty = true
	}
	r := cmd.remote(cmd.cli.Bool("stdin"), tty)
	r.redraw = true
	if !quiet {
		fmt.Fprintln(cmd.errOut, "If you don't see a command prompt, try pressing enter.")
	}
	if err := r.run(cmd, o, "/attach/"+podPath(pod)+"/"+url.PathEscape(container), r.query()); err != nil {
		return err
	}
	if r.raw && r.stdin && !quiet {
		fmt.Fprintf(cmd.out, "Session ended, resume using 'podsup attach %s -c %s -n %s -i -t' command\n", pod.Name, container, pod.Namespace)
	}
	return nil
}

// streamPod finds the pod and container of an exec or attach, and refuses
// a pod whose containers are all gone.
func (cmd *command) streamPod(verb string) (*v1.Pod, string, error) {
	pod, err := cmd.lookupPod(cmd.ctx, cmd.args[0])
	if err != nil {
		return nil, "", err
	}
	if pod.Status.Phase == v1.PodSucceeded || pod.Status.Phase == v1.PodFailed {
		return nil, "", fmt.Errorf("cannot %s a container in a completed pod; current phase is %s", verb, pod.Status.Phase)
	}
	container, note, err := pickContainer(pod, cmd.cli.String("container"))
	if err != nil {
		return nil, "", err
	}
	if note != "" && !cmd.cli.Bool("quiet") {
		fmt.Fprintln(cmd.errOut, note)
	}
	return pod, container, nil
}

func podPath(p *v1.Pod) string { return url.PathEscape(p.Namespace) + "/" + url.PathEscape(p.Name) }

// remote is one exec or attach session: which streams it has, and the
// local terminal of an interactive one.
type remote struct {
	stdin bool
	raw   bool      // a TTY on a local terminal in raw mode
	term  *terminal // when raw
	// redraw sends the size plus one before the size, so that a program
	// attached to redraws its screen, as kubectl attach does.
	redraw bool
}

// remote works out the session's streams as kubectl does: a TTY needs
// stdin, and stdin a terminal; without one the session goes on without a
// TTY, with a warning.
func (cmd *command) remote(stdin, tty bool) *remote {
	r := &remote{stdin: stdin}
	if !stdin || !tty {
		return r
	}
	t, ok := openTerminal(cmd.in)
	if !ok {
		if !cmd.cli.Bool("quiet") {
			fmt.Fprintln(cmd.errOut, "Unable to use a TTY - input is not a terminal or the right kind of file")
		}
		return r
	}
	r.raw, r.term = true, t
	return r
}

// query is the kubelet's: input, output, error and tty, "1" when on. A
// TTY merges stderr into stdout.
func (r *remote) query() url.Values {
	q := url.Values{"output": {"1"}}
	if r.stdin {
		q.Set("input", "1")
	}
	if r.raw {
		q.Set("tty", "1")
	} else {
		q.Set("error", "1")
	}
	return q
}

// run streams the session at path until it ends, with the terminal in raw
// mode and restored whatever ends it.
func (r *remote) run(cmd *command, o streamOptions, path string, query url.Values) (retErr error) {
	target, err := cmd.client.streamTarget(cmd.ctx, path)
	if err != nil {
		return err
	}
	exec, err := target.executor(path, query, o.protocol, o.wsProtocols)
	if err != nil {
		return err
	}
	opts := remotecommand.StreamOptions{Stdout: cmd.out, Stderr: cmd.errOut}
	if r.stdin {
		opts.Stdin = cmd.in
	}
	if r.raw {
		var first []remotecommand.TerminalSize
		if s, ok := r.term.size(); ok && r.redraw {
			first = append(first, remotecommand.TerminalSize{Width: s.Width + 1, Height: s.Height + 1})
		}
		sess, err := startSession(cmd.ctx, r.term, first...)
		if err != nil {
			return err
		}
		defer func() {
			if err := sess.stop(); err != nil && retErr == nil {
				retErr = err
			}
		}()
		opts.Tty, opts.Stderr, opts.TerminalSizeQueue = true, nil, sess.sizes
	}
	if err := exec.StreamWithContext(cmd.ctx, opts); err != nil && cmd.ctx.Err() == nil {
		return err
	}
	return cmd.ctx.Err() // Ctrl-C, maybe while the stream was set up
}
