// Package version holds podsup's version, set at build time with
// -ldflags "-X github.com/podsup/podsup/version.Version=v1.2.3".
package version

// Version is podsup's release version; "dev" in an unreleased build.
var Version = "dev"
