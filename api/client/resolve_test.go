package client

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"
	v1 "k8s.io/api/core/v1"
)

func TestPodRef(t *testing.T) {
	tests := []struct {
		arg, namespace   string
		wantNS, wantName string
		wantErr          bool
	}{
		{arg: "web", wantNS: "default", wantName: "web"},
		{arg: "web", namespace: "kube-system", wantNS: "kube-system", wantName: "web"},
		{arg: "kube-system/web", wantNS: "kube-system", wantName: "web"},
		{arg: "kube-system/web", namespace: "kube-system", wantNS: "kube-system", wantName: "web"},
		{arg: "kube-system/web", namespace: "default", wantErr: true},
		{arg: "a/b/c", wantErr: true},
		{arg: "/web", wantErr: true},
		{arg: "web/", wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.arg+" -n "+tc.namespace, func(t *testing.T) {
			ns, name, err := podRef(tc.arg, tc.namespace)
			if (err != nil) != tc.wantErr {
				t.Fatalf("error %v, want one: %v", err, tc.wantErr)
			}
			if err == nil && (ns != tc.wantNS || name != tc.wantName) {
				t.Errorf("got %s/%s, want %s/%s", ns, name, tc.wantNS, tc.wantName)
			}
		})
	}
}

func TestFindPod(t *testing.T) {
	pods := []v1.Pod{
		*staticPod("default", "web"),
		*staticPod("default", "web-api"),
		*staticPod("default", "db"),
		*staticPod("default", "db-replica"),
		*staticPod("kube-system", "dns"),
		*staticPod("default", "cache"),
		*staticPod("default", "cache-warm"),
	}
	pods[5].Spec.NodeName = "" // no node known: only the prefix matches
	pods[6].Spec.NodeName = ""
	tests := []struct {
		ns, name string
		want     string
		wantErr  string
	}{
		{ns: "default", name: "web-node1", want: "web-node1"},
		{ns: "default", name: "web", want: "web-node1"}, // the static pod, though web-api-node1 also starts with web-
		{ns: "default", name: "web-api", want: "web-api-node1"},
		{ns: "default", name: "db", want: "db-node1"},
		{ns: "kube-system", name: "dns", want: "dns-node1"},
		{ns: "default", name: "dns", wantErr: "not found"},
		{ns: "default", name: "cache", wantErr: "ambiguous in namespace default: name one of [cache-node1 cache-warm-node1]"},
		{ns: "default", name: "nope", wantErr: "pod default/nope not found"},
	}
	for _, tc := range tests {
		t.Run(tc.ns+"/"+tc.name, func(t *testing.T) {
			p, err := findPod(pods, tc.ns, tc.name)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want %q", err, tc.wantErr)
				}
				if strings.Contains(tc.wantErr, "not found") && !errors.Is(err, errPodNotFound) {
					t.Errorf("error %v is not errPodNotFound", err)
				}
				return
			}
			if err != nil || p.Name != tc.want {
				t.Fatalf("got %v, %v; want %s", p, err, tc.want)
			}
		})
	}
}

// TestPositional: flags given after the arguments apply, as kubectl's do.
func TestPositional(t *testing.T) {
	tests := []struct {
		name      string
		args      []string
		wantArgs  []string
		wantFlags map[string]string
		wantDash  int // where the arguments after -- begin; 0 for no -- (none here comes first)
		wantErr   string
	}{
		{name: "none", args: []string{"web"}, wantArgs: []string{"web"}},
		{name: "bool after", args: []string{"web", "-f"}, wantArgs: []string{"web"}, wantFlags: map[string]string{"follow": "true"}},
		{name: "value after", args: []string{"web", "-c", "main"}, wantArgs: []string{"web"}, wantFlags: map[string]string{"container": "main"}},
		{name: "value with =", args: []string{"web", "--tail=3"}, wantArgs: []string{"web"}, wantFlags: map[string]string{"tail": "3"}},
		{name: "bool with =", args: []string{"web", "--follow=false"}, wantArgs: []string{"web"}, wantFlags: map[string]string{"follow": "false"}},
		{name: "dash is an argument", args: []string{"-"}, wantArgs: []string{"-"}},
		{name: "double dash", args: []string{"web", "--", "-f"}, wantArgs: []string{"web", "-f"}, wantDash: 1},
		{name: "double dash after a flag", args: []string{"web", "-c", "main", "--", "ls", "-l"}, wantArgs: []string{"web", "ls", "-l"}, wantFlags: map[string]string{"container": "main"}, wantDash: 1},
		{name: "unknown", args: []string{"web", "--nope"}, wantErr: "unknown flag --nope"},
		{name: "short bools together", args: []string{"web", "-fp"}, wantArgs: []string{"web"}, wantFlags: map[string]string{"follow": "true", "previous": "true"}},
		{name: "short bool and value together", args: []string{"web", "-fc"}, wantErr: "unknown flag -fc"},
		{name: "no value", args: []string{"web", "-c"}, wantErr: "flag -c needs a value"},
		{name: "bad value", args: []string{"web", "--tail", "x"}, wantErr: "--tail x"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			var gotErr error
			gotDash := -1
			cmd := LogsCommand()
			cmd.Action = func(c *cli.Context) error {
				got, gotDash, gotErr = positional(c)
				for name, want := range tc.wantFlags {
					if v := c.Value(name); gotErr == nil && fmt.Sprint(v) != want {
						t.Errorf("flag %s = %v, want %s", name, v, want)
					}
				}
				return nil
			}
			app := &cli.App{Commands: []*cli.Command{cmd}}
			if err := app.Run(append([]string{"podsup", "logs"}, tc.args...)); err != nil {
				t.Fatal(err)
			}
			if tc.wantErr != "" {
				if gotErr == nil || !strings.Contains(gotErr.Error(), tc.wantErr) || !errors.Is(gotErr, errUsage) {
					t.Fatalf("error %v, want a usage error saying %q", gotErr, tc.wantErr)
				}
				return
			}
			if tc.wantDash == 0 {
				tc.wantDash = -1
			}
			if gotErr != nil || !slices.Equal(got, tc.wantArgs) || gotDash != tc.wantDash {
				t.Errorf("got %q, -- at %d, %v; want %q, -- at %d", got, gotDash, gotErr, tc.wantArgs, tc.wantDash)
			}
		})
	}
}
