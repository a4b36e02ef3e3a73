package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/urfave/cli/v2"
)

// errUsage marks a command line that is wrong, as opposed to a podsup that
// said no: it exits 2.
var errUsage = errors.New("usage")

func usagef(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{errUsage}, args...)...)
}

// command is what a client command runs with.
type command struct {
	ctx       context.Context // ends on Ctrl-C
	client    *Client
	args      []string // positional, with the flags among them taken out
	dash      int      // index in args of the first argument after --, or -1
	in        io.Reader
	out       io.Writer
	errOut    io.Writer
	namespace string // -n, or "" when not given
	cli       *cli.Context
}

func namespaceFlag() cli.Flag {
	return &cli.StringFlag{Name: "namespace", Aliases: []string{"n"}, Usage: "`NAMESPACE` of a pod named without one (default: default)"}
}

// action runs a command: flags given after its arguments are applied, as
// kubectl allows (`podsup logs web -f`), Ctrl-C ends it cleanly, and an
// error is printed as "podsup NAME: ..." with exit status 1, or 2 for a
// command line that is wrong.
func action(name string, run func(*command) error) cli.ActionFunc {
	return func(c *cli.Context) error {
		ctx, stop := signal.NotifyContext(c.Context, os.Interrupt, syscall.SIGTERM)
		defer stop()
		// The first Ctrl-C ends the command cleanly; a second one kills it,
		// should a wait not heed the first (gorilla/websocket's handshake).
		context.AfterFunc(ctx, func() { stop() })
		err := func() error {
			args, dash, err := positional(c)
			if err != nil {
				return err
			}
			cl, err := newClient(connOptionsFrom(c))
			if err != nil {
				return fmt.Errorf("%w: %w", errUsage, err)
			}
			return run(&command{ctx: ctx, client: cl, args: args, dash: dash, in: c.App.Reader, out: c.App.Writer, errOut: c.App.ErrWriter, namespace: c.String("namespace"), cli: c})
		}()
		switch {
		case err == nil, ctx.Err() != nil && errors.Is(err, context.Canceled):
			return nil
		case errors.Is(err, errUsage):
			msg := strings.TrimPrefix(err.Error(), errUsage.Error()+": ")
			return cli.Exit(fmt.Sprintf("podsup %s: %s\nsee 'podsup %s --help'", name, msg, name), 2)
		}
		code := 1
		var ec cli.ExitCoder // a remote command's own exit status
		if errors.As(err, &ec) {
			code = ec.ExitCode()
		}
		return cli.Exit(fmt.Sprintf("podsup %s: %v", name, err), code)
	}
}

// positional returns the command's arguments, applying any flag found
// among them: urfave/cli stops at the first argument, kubectl does not.
// dash is the index of the first argument that followed --, or -1.
func positional(c *cli.Context) (pos []string, dash int, err error) {
	args := c.Args().Slice()
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			return append(pos, args[i+1:]...), len(pos), nil
		}
		if !strings.HasPrefix(a, "-") || a == "-" {
			pos = append(pos, a)
			continue
		}
		name, val, hasVal := strings.Cut(strings.TrimLeft(a, "-"), "=")
		f := lookupFlag(c.Command.Flags, name)
		if f == nil && !hasVal && !strings.HasPrefix(a, "--") {
			if err := setShortBools(c, name); err != nil {
				return nil, -1, err
			}
			continue
		}
		if f == nil {
			return nil, -1, usagef("unknown flag %s", a)
		}
		if _, isBool := f.(*cli.BoolFlag); isBool && !hasVal {
			val = "true"
		} else if !hasVal {
			if i+1 == len(args) {
				return nil, -1, usagef("flag %s needs a value", a)
			}
			i++
			val = args[i]
		}
		// Each of a flag's names has its own value once parsed: set them all.
		for _, n := range f.Names() {
			if err := c.Set(n, val); err != nil {
				return nil, -1, usagef("%s %s: %v", a, val, err)
			}
		}
	}
	return pos, -1, nil
}

// setShortBools sets the one-letter bool flags run together in -it, as
// urfave/cli does before the first argument with UseShortOptionHandling.
func setShortBools(c *cli.Context, letters string) error {
	for _, l := range letters {
		f, isBool := lookupFlag(c.Command.Flags, string(l)).(*cli.BoolFlag)
		if !isBool {
			return usagef("unknown flag -%s", letters)
		}
		for _, n := range f.Names() {
			if err := c.Set(n, "true"); err != nil {
				return usagef("-%s: %v", letters, err)
			}
		}
	}
	return nil
}

func lookupFlag(flags []cli.Flag, name string) cli.Flag {
	for _, f := range flags {
		for _, n := range f.Names() {
			if n == name {
				return f
			}
		}
	}
	return nil
}
