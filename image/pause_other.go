//go:build !amd64

package image

func pauseCode() ([]byte, uint16, bool) { return nil, 0, false }
