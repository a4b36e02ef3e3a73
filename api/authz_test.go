package api

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"

	"k8s.io/apiserver/pkg/authentication/authenticator"
	"k8s.io/apiserver/pkg/authentication/user"
	"k8s.io/apiserver/pkg/authorization/authorizer"
)

func TestRequestAttributes(t *testing.T) {
	tests := []struct {
		method, path string
		verb         string
		subresources []string
	}{
		{"GET", "/stats/summary", "get", []string{"stats"}},
		{"GET", "/stats", "get", []string{"stats"}},
		{"GET", "/metrics", "get", []string{"metrics"}},
		{"GET", "/metrics/probes", "get", []string{"metrics"}},
		{"GET", "/logs/", "get", []string{"log"}},
		{"GET", "/pods", "get", []string{"pods", "proxy"}},
		{"GET", "/pods/kube-system/etcd-node1/status", "get", []string{"pods", "proxy"}},
		{"GET", "/runningpods/", "get", []string{"pods", "proxy"}},
		{"GET", "/healthz", "get", []string{"healthz", "proxy"}},
		{"HEAD", "/healthz", "get", []string{"healthz", "proxy"}},
		{"GET", "/statsfoo", "get", []string{"proxy"}},
		{"GET", "/podsfoo", "get", []string{"proxy"}},
		{"GET", "/", "get", []string{"proxy"}},
		{"GET", "/ui/state", "get", []string{"proxy"}},
		{"GET", "/containerLogs/default/web/main", "get", []string{"proxy"}},
		{"GET", "/events", "get", []string{"proxy"}},
		{"GET", "/manifests", "get", []string{"proxy"}},
		{"PUT", "/manifests/web", "update", []string{"proxy"}},
		{"PATCH", "/manifests/web", "patch", []string{"proxy"}},
		{"DELETE", "/manifests/web", "delete", []string{"proxy"}},
		{"POST", "/manifests/web", "create", []string{"proxy"}},
		{"OPTIONS", "/manifests", "options", []string{"proxy"}},
		// Streaming needs create whatever the method: a WebSocket upgrade
		// is a GET.
		{"POST", "/exec/default/web/main", "create", []string{"proxy"}},
		{"GET", "/exec/default/web/main", "create", []string{"proxy"}},
		{"GET", "/attach/default/web/main", "create", []string{"proxy"}},
		{"GET", "/portForward/default/web", "create", []string{"proxy"}},
		{"GET", "/run/default/web/main", "create", []string{"proxy"}},
		{"HEAD", "/exec/default/web/main", "create", []string{"proxy"}},
		{"GET", "/execute", "get", []string{"proxy"}},
	}
	u := &user.DefaultInfo{Name: "alice"}
	for _, tc := range tests {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			attrs := RequestAttributes("node1", u, httptest.NewRequest(tc.method, tc.path, nil))
			var subs []string
			for _, a := range attrs {
				subs = append(subs, a.Subresource)
				if a.Verb != tc.verb || a.Resource != "nodes" || a.Name != "node1" || a.APIGroup != "" || a.APIVersion != "v1" ||
					!a.ResourceRequest || a.Namespace != "" || a.User != u || a.Path != tc.path {
					t.Errorf("attributes %+v: want verb %s on nodes/node1", a, tc.verb)
				}
			}
			if !slices.Equal(subs, tc.subresources) {
				t.Errorf("subresources %q, want %q", subs, tc.subresources)
			}
		})
	}
}

// fakeAuthorizer allows what allow says, and records what it was asked.
type fakeAuthorizer struct {
	allow func(authorizer.Attributes) (authorizer.Decision, error)
	mu    sync.Mutex
	asked []authorizer.Attributes
}

func (f *fakeAuthorizer) Authorize(_ context.Context, a authorizer.Attributes) (authorizer.Decision, string, error) {
	f.mu.Lock()
	f.asked = append(f.asked, a)
	f.mu.Unlock()
	d, err := f.allow(a)
	return d, "", err
}

// allowOnly allows verb on nodes/subresource and has no opinion on the
// rest, as RBAC answers.
func allowOnly(verb, subresource string) func(authorizer.Attributes) (authorizer.Decision, error) {
	return func(a authorizer.Attributes) (authorizer.Decision, error) {
		if a.GetVerb() == verb && a.GetResource() == "nodes" && a.GetSubresource() == subresource && a.GetName() == "node1" {
			return authorizer.DecisionAllow, nil
		}
		return authorizer.DecisionNoOpinion, nil
	}
}

// fakeTokens is the apiserver's TokenReview: it knows one token.
type fakeTokens struct {
	err   error
	calls int
}

func (f *fakeTokens) AuthenticateToken(_ context.Context, token string) (*authenticator.Response, bool, error) {
	f.calls++
	if f.err != nil {
		return nil, false, f.err
	}
	if token != "sa-token" {
		return nil, false, nil
	}
	return &authenticator.Response{User: &user.DefaultInfo{Name: "system:serviceaccount:default:reader", UID: "u1",
		Groups: []string{"system:serviceaccounts", "system:authenticated"}, Extra: map[string][]string{"k": {"v"}}}}, true, nil
}

func TestMiddlewareWebhookMode(t *testing.T) {
	tokens := []Token{{token: []byte("s3cret"), user: User{Name: "alice", Groups: []string{"ops"}}}}
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("served")) })
	tests := []struct {
		name      string
		anonymous bool
		allow     func(authorizer.Attributes) (authorizer.Decision, error)
		method    string
		path      string
		auth      string
		code      int
		message   string // in the body
	}{
		{"allowed stats", false, allowOnly("get", "stats"), "GET", "/stats/summary", "Bearer s3cret", 200, "served"},
		{"no rights on logs", false, allowOnly("get", "stats"), "GET", "/containerLogs/default/web/main", "Bearer s3cret", 403,
			"Forbidden (user=alice, verb=get, resource=nodes, subresource(s)=[proxy])"},
		{"pods through the pods subresource", false, allowOnly("get", "pods"), "GET", "/pods", "Bearer s3cret", 200, "served"},
		{"pods through proxy", false, allowOnly("get", "proxy"), "GET", "/pods", "Bearer s3cret", 200, "served"},
		{"pods without either", false, allowOnly("get", "stats"), "GET", "/pods", "Bearer s3cret", 403, "subresource(s)=[pods proxy]"},
		{"a WebSocket exec needs create", false, allowOnly("get", "proxy"), "GET", "/exec/default/web/main?command=sh", "Bearer s3cret", 403,
			"Forbidden (user=alice, verb=create, resource=nodes, subresource(s)=[proxy])"},
		{"exec with create", false, allowOnly("create", "proxy"), "GET", "/exec/default/web/main", "Bearer s3cret", 200, "served"},
		{"push with update", false, allowOnly("update", "proxy"), "PUT", "/manifests/web", "Bearer s3cret", 200, "served"},
		{"review fails", false, func(authorizer.Attributes) (authorizer.Decision, error) {
			return authorizer.DecisionNoOpinion, errors.New("dial tcp 10.0.0.1:6443: connection refused")
		}, "GET", "/stats/summary", "Bearer s3cret", 500, "Authorization error (user=alice, verb=get, resource=nodes, subresource=stats)"},
		{"unauthenticated, not asked", true, allowOnly("get", "stats"), "GET", "/stats/summary", "Bearer guess", 401, "Unauthorized"},
		{"anonymous allowed", true, allowOnly("get", "stats"), "GET", "/stats/summary", "", 200, "served"},
		{"anonymous refused", true, allowOnly("get", "metrics"), "GET", "/stats/summary", "", 403, "user=system:anonymous"},
		// The GET-only rule of AlwaysAllow is the authorizer's to make.
		{"anonymous may write when allowed", true, allowOnly("delete", "proxy"), "DELETE", "/manifests/web", "", 200, "served"},
		{"service account token", false, allowOnly("get", "stats"), "GET", "/stats/summary", "Bearer sa-token", 200, "served"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			az := &fakeAuthorizer{allow: tc.allow}
			h := NewAuthenticator(tokens, tc.anonymous, WithTokenReview(&fakeTokens{}), WithAuthorizer("node1", az)).Middleware(ok)
			req := httptest.NewRequest(tc.method, tc.path, nil)
			if tc.auth != "" {
				req.Header.Set("Authorization", tc.auth)
			}
			rr := httptest.NewRecorder()
			h.ServeHTTP(rr, req)
			if rr.Code != tc.code || !strings.Contains(rr.Body.String(), tc.message) {
				t.Fatalf("%d %q, want %d with %q", rr.Code, rr.Body, tc.code, tc.message)
			}
			if tc.code != 200 && tc.code != 401 {
				var st map[string]any
				if err := json.Unmarshal(rr.Body.Bytes(), &st); err != nil || st["kind"] != "Status" || st["code"] != float64(tc.code) {
					t.Errorf("body %q is not a Status of code %d: %v", rr.Body, tc.code, err)
				}
			}
			if tc.code == 401 && len(az.asked) > 0 {
				t.Errorf("an unauthenticated request was authorized: %v", az.asked)
			}
		})
	}
}

// TestAuthorizedUsers: the authorizer is asked about the user as
// authenticated, with the group every authenticated user is in, and about
// system:anonymous in system:unauthenticated, as the kubelet asks.
func TestAuthorizedUsers(t *testing.T) {
	tokens := []Token{{token: []byte("s3cret"), user: User{Name: "alice", UID: "1", Groups: []string{"ops"}}}}
	tests := []struct {
		auth   string
		name   string
		groups []string
		extra  map[string][]string
	}{
		{"Bearer s3cret", "alice", []string{"ops", "system:authenticated"}, nil},
		{"Bearer sa-token", "system:serviceaccount:default:reader", []string{"system:serviceaccounts", "system:authenticated"}, map[string][]string{"k": {"v"}}},
		{"", "system:anonymous", []string{"system:unauthenticated"}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			az := &fakeAuthorizer{allow: allowOnly("get", "stats")}
			h := NewAuthenticator(tokens, true, WithTokenReview(&fakeTokens{}), WithAuthorizer("node1", az)).
				Middleware(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
			req := httptest.NewRequest("GET", "/stats/summary", nil)
			if tc.auth != "" {
				req.Header.Set("Authorization", tc.auth)
			}
			h.ServeHTTP(httptest.NewRecorder(), req)
			if len(az.asked) != 1 {
				t.Fatalf("asked %d times", len(az.asked))
			}
			u := az.asked[0].GetUser()
			if u.GetName() != tc.name || !slices.Equal(u.GetGroups(), tc.groups) || len(u.GetExtra()) != len(tc.extra) {
				t.Errorf("asked about %q %q %v, want %q %q %v", u.GetName(), u.GetGroups(), u.GetExtra(), tc.name, tc.groups, tc.extra)
			}
		})
	}
}

// TestAuthorizationBeforeRouting: a refused user learns nothing of which
// paths exist, as on the kubelet: 403 for a route podsup lacks too.
func TestAuthorizationBeforeRouting(t *testing.T) {
	tokens := []Token{{token: []byte("s3cret"), user: User{Name: "alice"}}}
	h := NewAuthenticator(tokens, false, WithAuthorizer("node1", &fakeAuthorizer{allow: allowOnly("get", "stats")})).
		Middleware(FullHandler(testDeps(t)))
	for path, want := range map[string]int{
		"/exec/default/web/main": 403, "/no/such/route": 403, "/containerLogs/default/web-node1/app": 403,
		"/stats/no-such-route": 404, // allowed, then routed
	} {
		req := httptest.NewRequest("GET", path, nil)
		req.Header.Set("Authorization", "Bearer s3cret")
		rr := httptest.NewRecorder()
		h.ServeHTTP(rr, req)
		if rr.Code != want {
			t.Errorf("GET %s: %d %q, want %d", path, rr.Code, rr.Body, want)
		}
	}
}
