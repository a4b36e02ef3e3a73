package cni

import "errors"

var (
	// ErrNetworkSetup marks a failure to give a pod its network: a plugin
	// that is missing, failed or timed out, an exhausted address pool, or a
	// configuration directory that became unusable. Nothing is left behind
	// and the caller retries with backoff.
	ErrNetworkSetup = errors.New("network setup failed")
	// ErrNotFound marks a sandbox that has no network set up.
	ErrNotFound = errors.New("no pod network")
	// ErrInvalid marks a request the manager cannot act on: a PodNetwork or
	// sandbox ID with a missing or malformed field. Retrying does not help.
	ErrInvalid = errors.New("invalid pod network request")
	// ErrConfig marks a network configuration that cannot be used: a file in
	// the CNI configuration directory or an option such as the pod CIDR.
	ErrConfig = errors.New("unusable network configuration")
)

// ConfigError is a network configuration podsup cannot use. Subject names
// what is wrong, a file or an option, so the message tells a person where to
// look: "/etc/cni/net.d/10-x.conflist: error parsing configuration list: ...".
type ConfigError struct {
	Subject string // file path, or an option such as `pod CIDR "10.0.0.0/30"`
	Err     error
}

func (e *ConfigError) Error() string { return e.Subject + ": " + e.Err.Error() }

// Unwrap returns the underlying error.
func (e *ConfigError) Unwrap() error { return e.Err }

// Is makes errors.Is(err, ErrConfig) true for every *ConfigError.
func (e *ConfigError) Is(target error) bool { return target == ErrConfig }
