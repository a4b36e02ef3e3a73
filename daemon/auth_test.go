package daemon

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

func TestAuthFlags(t *testing.T) {
	base := []string{"--manifests", "/m", "--node-name", "n1"}
	cfg, err := parseRun(t, base...)
	if err != nil {
		t.Fatal(err)
	}
	a := cfg.API
	if a.TokenWebhook || a.TokenWebhookCacheTTL != 2*time.Minute || a.AuthorizationMode != "AlwaysAllow" ||
		a.AuthorizedTTL != 5*time.Minute || a.UnauthorizedTTL != 30*time.Second {
		t.Errorf("defaults %+v: want the kubelet's", a)
	}
	cfg, err = parseRun(t, append(base, "--kubeconfig", "/k", "--authentication-token-webhook", "--authentication-token-webhook-cache-ttl", "10s",
		"--authorization-mode", "Webhook", "--authorization-webhook-cache-authorized-ttl", "1m", "--authorization-webhook-cache-unauthorized-ttl", "0s")...)
	if err != nil {
		t.Fatal(err)
	}
	a = cfg.API
	if !a.TokenWebhook || a.TokenWebhookCacheTTL != 10*time.Second || a.AuthorizationMode != "Webhook" || a.AuthorizedTTL != time.Minute || a.UnauthorizedTTL != 0 {
		t.Errorf("config %+v", a)
	}

	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"--authentication-token-webhook"}, "--authentication-token-webhook given without --kubeconfig"},
		{[]string{"--authorization-mode", "Webhook"}, "--authorization-mode Webhook given without --kubeconfig"},
		{[]string{"--kubeconfig", "/k", "--authorization-mode", "RBAC"}, `--authorization-mode "RBAC": want AlwaysAllow or Webhook`},
		{[]string{"--kubeconfig", "/k", "--authorization-webhook-cache-unauthorized-ttl", "-1s"}, "--authorization-webhook-cache-unauthorized-ttl -1s: must not be negative"},
	} {
		_, err := parseRun(t, append(base, tt.args...)...)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%v: error %v, want one with %q", tt.args, err, tt.want)
		}
	}
}

// TestAPIAuthWiring: with both webhooks, a bearer token is reviewed and the
// request authorized about the node, through the kubeconfig's client.
func TestAPIAuthWiring(t *testing.T) {
	var tokenReviews, accessReviews atomic.Int32
	client := fake.NewClientset()
	client.PrependReactor("create", "tokenreviews", func(a k8stesting.Action) (bool, runtime.Object, error) {
		tokenReviews.Add(1)
		r := a.(k8stesting.CreateAction).GetObject().(*authenticationv1.TokenReview).DeepCopy()
		r.Status.Authenticated = r.Spec.Token == "sa-token"
		r.Status.User.Username = "system:serviceaccount:default:reader"
		return true, r, nil
	})
	client.PrependReactor("create", "subjectaccessreviews", func(a k8stesting.Action) (bool, runtime.Object, error) {
		accessReviews.Add(1)
		r := a.(k8stesting.CreateAction).GetObject().(*authorizationv1.SubjectAccessReview).DeepCopy()
		ra := r.Spec.ResourceAttributes
		r.Status.Allowed = r.Spec.User == "system:serviceaccount:default:reader" && ra.Name == "node1" && ra.Subresource == "stats" && ra.Verb == "get"
		return true, r, nil
	})
	ac := APIConfig{Address: "127.0.0.1:0", TokenWebhook: true, TokenWebhookCacheTTL: time.Minute,
		AuthorizationMode: AuthorizationWebhook, AuthorizedTTL: time.Minute, UnauthorizedTTL: time.Minute}
	auth, err := apiAuth(ac, &kubeClient{client: client}, "node1", slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	h := auth.Middleware(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	get := func(path, token string) int {
		req := httptest.NewRequest("GET", path, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		rr := httptest.NewRecorder()
		h.ServeHTTP(rr, req)
		return rr.Code
	}
	for range 2 {
		if code := get("/stats/summary", "sa-token"); code != 200 {
			t.Errorf("stats: %d, want 200", code)
		}
		if code := get("/containerLogs/default/web/main", "sa-token"); code != 403 {
			t.Errorf("logs: %d, want 403", code)
		}
		if code := get("/stats/summary", "guess"); code != 401 {
			t.Errorf("unknown token: %d, want 401", code)
		}
	}
	if tokenReviews.Load() != 2 || accessReviews.Load() != 2 {
		t.Errorf("%d token reviews and %d access reviews, want 2 and 2: the answers are kept", tokenReviews.Load(), accessReviews.Load())
	}

	if _, err := apiAuth(ac, nil, "node1", slog.New(slog.DiscardHandler)); err == nil || !strings.Contains(err.Error(), "--kubeconfig") {
		t.Errorf("webhooks without a client: %v", err)
	}
}
