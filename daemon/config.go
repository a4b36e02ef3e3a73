package daemon

import (
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"

	"github.com/urfave/cli/v2"
	"sigs.k8s.io/yaml"
)

// maxConfigBytes bounds the --config file.
const maxConfigBytes = 1 << 20

// applyConfigFile sets every flag named in the --config file that was not set
// on the command line or by its environment variable, so the order of
// precedence is: flag, environment, file, default. An unknown key or a bad
// value is an error naming the file and the key.
func applyConfigFile(c *cli.Context) error {
	path := c.String("config")
	if path == "" {
		return nil
	}
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("--config: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxConfigBytes+1))
	if err != nil {
		return fmt.Errorf("--config: %w", err)
	}
	if len(data) > maxConfigBytes {
		return fmt.Errorf("%s: larger than %d bytes", path, maxConfigBytes)
	}
	var settings map[string]any
	if err := yaml.UnmarshalStrict(data, &settings); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if isKubeletConfig(settings) {
		return applyKubeletConfig(c, path, data, settings)
	}
	known := map[string]bool{}
	for _, fl := range c.Command.Flags {
		for _, n := range fl.Names() {
			known[n] = true
		}
	}
	keys := make([]string, 0, len(settings))
	for k := range settings {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, key := range keys {
		if !known[key] || key == "config" {
			return fmt.Errorf("%s: %q is not a setting of podsup run (keys are flag names, such as manifests or node-name)", path, key)
		}
		if c.IsSet(key) {
			continue
		}
		values, err := settingValues(settings[key])
		if err != nil {
			return fmt.Errorf("%s: %s: %w", path, key, err)
		}
		for _, v := range values {
			if err := c.Set(key, v); err != nil {
				return fmt.Errorf("%s: %s: %w", path, key, err)
			}
		}
	}
	return nil
}

// settingValues turns a YAML value into the strings a flag parses: one for a
// scalar, one per item for a list (repeatable flags).
func settingValues(v any) ([]string, error) {
	switch v := v.(type) {
	case []any:
		var out []string
		for _, item := range v {
			s, err := scalar(item)
			if err != nil {
				return nil, err
			}
			out = append(out, s)
		}
		return out, nil
	default:
		s, err := scalar(v)
		return []string{s}, err
	}
}

func scalar(v any) (string, error) {
	switch v := v.(type) {
	case string:
		return v, nil
	case bool:
		return strconv.FormatBool(v), nil
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64), nil
	case int64:
		return strconv.FormatInt(v, 10), nil
	case nil:
		return "", nil
	}
	return "", fmt.Errorf("want a string, number, boolean or list of them, not %T", v)
}

// applyKubeletConfig sets the flags a KubeletConfiguration's fields map to,
// unless set on the command line or by their environment variables, and
// keeps the names of the fields podsup ignores, for Run to warn about.
func applyKubeletConfig(c *cli.Context, path string, data []byte, present map[string]any) error {
	settings, ignored, err := kubeletConfigSettings(path, data, present)
	if err != nil {
		return err
	}
	flags := make([]string, 0, len(settings))
	for flag := range settings {
		flags = append(flags, flag)
	}
	sort.Strings(flags)
	for _, flag := range flags {
		if c.IsSet(flag) {
			continue
		}
		for _, v := range settings[flag] {
			if err := c.Set(flag, v); err != nil {
				return fmt.Errorf("%s: the setting of --%s: %w", path, flag, err)
			}
		}
		if len(settings[flag]) == 0 {
			if err := c.Set(flag, ""); err != nil {
				return fmt.Errorf("%s: the setting of --%s: %w", path, flag, err)
			}
		}
	}
	if c.App.Metadata == nil {
		c.App.Metadata = map[string]any{}
	}
	c.App.Metadata[ignoredConfigKey] = ignored
	return nil
}

// ignoredConfigKey is where applyKubeletConfig leaves the fields it
// ignored, in the app's metadata.
const ignoredConfigKey = "podsup/ignored-kubelet-config-fields"

// ignoredConfigFields are the fields of a KubeletConfiguration that podsup
// read and ignored.
func ignoredConfigFields(c *cli.Context) []string {
	fields, _ := c.App.Metadata[ignoredConfigKey].([]string)
	return fields
}
