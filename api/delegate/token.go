// Package delegate asks the apiserver who a bearer token belongs to
// (TokenReview) and whether a user may do something (SubjectAccessReview),
// and caches the answers, as the kubelet's delegating authenticator and
// authorizer do with the same defaults.
//
// The reviews are sent through client-go's typed clients rather than
// k8s.io/apiserver's webhook plugins, which the kubelet uses: those talk to
// the clientset's RESTClient directly, bypassing the typed clients (so a
// fake clientset cannot stand in for the apiserver), and the authorizer
// plugin links the CEL interpreter for match conditions podsup never has
// (6 MB of the binary). The token cache is k8s.io/apiserver's own.
package delegate

import (
	"context"
	"fmt"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilnet "k8s.io/apimachinery/pkg/util/net"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/apiserver/pkg/authentication/authenticator"
	"k8s.io/apiserver/pkg/authentication/token/cache"
	"k8s.io/apiserver/pkg/authentication/user"
	authenticationclient "k8s.io/client-go/kubernetes/typed/authentication/v1"
)

// DefaultTokenCacheTTL is how long a TokenReview's answer, yes or no, is
// kept: the kubelet's --authentication-token-webhook-cache-ttl.
const DefaultTokenCacheTTL = 2 * time.Minute

// DefaultRetry is how a review that failed for a passing reason (a reset
// connection, a 500, a 429) is retried: the kubelet's, five tries over
// about four seconds.
var DefaultRetry = wait.Backoff{Duration: 500 * time.Millisecond, Factor: 1.5, Jitter: 0.2, Steps: 5}

// NewTokenAuthenticator checks bearer tokens with TokenReviews, keeping
// each answer for ttl (0: no cache). A token the apiserver refuses is not
// an error; a review that cannot be made is, and is not kept.
func NewTokenAuthenticator(client authenticationclient.TokenReviewInterface, ttl time.Duration, retry wait.Backoff) authenticator.Token {
	return cache.New(&tokenReviewer{client: client, retry: retry}, false, ttl, ttl)
}

type tokenReviewer struct {
	client authenticationclient.TokenReviewInterface
	retry  wait.Backoff
}

func (t *tokenReviewer) AuthenticateToken(ctx context.Context, token string) (*authenticator.Response, bool, error) {
	review := &authenticationv1.TokenReview{Spec: authenticationv1.TokenReviewSpec{Token: token}}
	var result *authenticationv1.TokenReview
	err := withRetry(ctx, t.retry, func() (err error) {
		result, err = t.client.Create(ctx, review, metav1.CreateOptions{})
		return err
	})
	if err != nil {
		return nil, false, fmt.Errorf("token review: %w", err)
	}
	if !result.Status.Authenticated {
		return nil, false, nil
	}
	u := result.Status.User
	var extra map[string][]string
	if len(u.Extra) > 0 {
		extra = make(map[string][]string, len(u.Extra))
		for k, v := range u.Extra {
			extra[k] = v
		}
	}
	return &authenticator.Response{User: &user.DefaultInfo{Name: u.Username, UID: u.UID, Groups: u.Groups, Extra: extra}}, true, nil
}

// withRetry calls create until it succeeds, fails for good, or the tries
// of retry are spent; the error is create's last.
func withRetry(ctx context.Context, retry wait.Backoff, create func() error) error {
	var last error
	err := wait.ExponentialBackoffWithContext(ctx, retry, func(context.Context) (bool, error) {
		last = create()
		if last != nil && transient(last) {
			return false, nil
		}
		return true, last
	})
	if last != nil {
		return last
	}
	return err
}

// transient is an error that a later try may not meet, as the apiserver's
// webhooks judge it.
func transient(err error) bool {
	if utilnet.IsConnectionReset(err) || utilnet.IsHTTP2ConnectionLost(err) ||
		apierrors.IsInternalError(err) || apierrors.IsTimeout(err) || apierrors.IsTooManyRequests(err) {
		return true
	}
	_, retry := apierrors.SuggestsClientDelay(err)
	return retry
}
