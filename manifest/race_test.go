//go:build race

package manifest

// raceDetector is whether the tests run with the race detector.
const raceDetector = true
