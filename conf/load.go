package conf

import (
	_ "embed"
	"errors"
	"fmt"
	"os"
	"reflect"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

//go:embed callpath.yaml
var defaultYAML []byte

// EnvPrefix starts the name of every environment override.
const EnvPrefix = "CALLPATH_"

// ErrInvalid is wrapped by every configuration error, each of which names the key.
var ErrInvalid = errors.New("invalid configuration")

// DefaultYAML returns the shipped configuration file, which holds every key
// with its default value.
func DefaultYAML() []byte { return append([]byte(nil), defaultYAML...) }

// Default returns the embedded defaults.
func Default() (*Config, error) {
	cfg := &Config{}
	if err := decodeInto(cfg, defaultYAML, "embedded defaults"); err != nil {
		return nil, err
	}
	return cfg, nil
}

// Load builds the configuration: embedded defaults, then the file at path (if
// path is not empty), then environment overrides from environ (os.Environ()
// form), then validation.
func Load(path string, environ []string) (*Config, error) {
	cfg, err := Default()
	if err != nil {
		return nil, err
	}
	if path != "" {
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("read config: %w", err)
		}
		if err := decodeInto(cfg, data, path); err != nil {
			return nil, err
		}
	}
	if err := applyEnv(cfg, environ); err != nil {
		return nil, err
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return cfg, nil
}

// Parse decodes YAML over the embedded defaults and validates the result,
// without reading files or the environment (tests and embedded use).
func Parse(data []byte) (*Config, error) {
	cfg, err := Default()
	if err != nil {
		return nil, err
	}
	if err := decodeInto(cfg, data, "config"); err != nil {
		return nil, err
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return cfg, nil
}

func keyError(key, format string, args ...any) error {
	return fmt.Errorf("%w: %s: %s", ErrInvalid, key, fmt.Sprintf(format, args...))
}

// ParseOver decodes YAML over a copy of base and validates the result.
func ParseOver(base *Config, data []byte) (*Config, error) {
	cfg := *base
	cfg.Routing.Routes = append([]Route(nil), base.Routing.Routes...)
	if err := decodeInto(&cfg, data, "config"); err != nil {
		return nil, err
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &cfg, nil
}

// decodeInto walks the YAML tree beside the struct so that every error names
// the full key path (yaml.v3's own strict mode only names a line and a Go type).
func decodeInto(cfg *Config, data []byte, source string) error {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return fmt.Errorf("%w: %s: %v", ErrInvalid, source, err)
	}
	if doc.Kind == 0 || len(doc.Content) == 0 {
		return nil // empty file: defaults stand
	}
	root := doc.Content[0]
	if root.Kind == yaml.ScalarNode && root.Tag == "!!null" {
		return nil
	}
	return decodeValue(reflect.ValueOf(cfg).Elem(), root, "")
}

var durationType = reflect.TypeOf(time.Duration(0))

func decodeValue(v reflect.Value, n *yaml.Node, key string) error {
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	switch {
	case v.Kind() == reflect.Struct:
		if n.Kind != yaml.MappingNode {
			return keyError(displayKey(key), "want a mapping of keys, got %s", nodeKind(n))
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			name := n.Content[i].Value
			child := joinKey(key, name)
			field, ok := fieldByTag(v, name)
			if !ok {
				return keyError(child, "unknown key (line %d)", n.Content[i].Line)
			}
			if err := decodeValue(field, n.Content[i+1], child); err != nil {
				return err
			}
		}
		return nil
	case v.Kind() == reflect.Slice:
		if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
			v.Set(reflect.MakeSlice(v.Type(), 0, 0))
			return nil
		}
		if n.Kind != yaml.SequenceNode {
			return keyError(key, "want a list, got %s", nodeKind(n))
		}
		out := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
		for i, item := range n.Content {
			if err := decodeValue(out.Index(i), item, fmt.Sprintf("%s[%d]", key, i)); err != nil {
				return err
			}
		}
		v.Set(out)
		return nil
	}
	if n.Kind != yaml.ScalarNode {
		return keyError(key, "want a single value, got %s", nodeKind(n))
	}
	return setScalar(v, n.Value, n.Tag == "!!null", key)
}

// setScalar parses text into a scalar field. It is shared by the YAML walk and
// the environment overrides so both accept exactly the same spellings.
func setScalar(v reflect.Value, text string, isNull bool, key string) error {
	if v.Type() == durationType {
		d, err := time.ParseDuration(strings.TrimSpace(text))
		if err != nil {
			return keyError(key, "want a duration such as 500ms or 30s, got %q", text)
		}
		v.SetInt(int64(d))
		return nil
	}
	switch v.Kind() {
	case reflect.String:
		if isNull {
			v.SetString("")
			return nil
		}
		v.SetString(text)
	case reflect.Bool:
		b, err := strconv.ParseBool(strings.TrimSpace(text))
		if err != nil {
			return keyError(key, "want true or false, got %q", text)
		}
		v.SetBool(b)
	case reflect.Int, reflect.Int64, reflect.Int32:
		i, err := strconv.ParseInt(strings.TrimSpace(text), 10, 64)
		if err != nil {
			return keyError(key, "want a whole number, got %q", text)
		}
		v.SetInt(i)
	default:
		return keyError(key, "unsupported type %s", v.Type())
	}
	return nil
}

func fieldByTag(v reflect.Value, name string) (reflect.Value, bool) {
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		if tagName(t.Field(i)) == name {
			return v.Field(i), true
		}
	}
	return reflect.Value{}, false
}

func tagName(f reflect.StructField) string {
	tag := f.Tag.Get("yaml")
	if i := strings.IndexByte(tag, ','); i >= 0 {
		tag = tag[:i]
	}
	return tag
}

func joinKey(parent, name string) string {
	if parent == "" {
		return name
	}
	return parent + "." + name
}

func displayKey(key string) string {
	if key == "" {
		return "(top level)"
	}
	return key
}

func nodeKind(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	default:
		return fmt.Sprintf("%q", n.Value)
	}
}

// applyEnv sets every scalar key that has a CALLPATH_ variable in environ.
func applyEnv(cfg *Config, environ []string) error {
	env := make(map[string]string)
	for _, kv := range environ {
		if k, val, ok := strings.Cut(kv, "="); ok && strings.HasPrefix(k, EnvPrefix) {
			env[k] = val
		}
	}
	if len(env) == 0 {
		return nil
	}
	known := make(map[string]bool)
	err := walkScalars(reflect.ValueOf(cfg).Elem(), "", func(v reflect.Value, key string) error {
		name := EnvName(key)
		known[name] = true
		if val, ok := env[name]; ok {
			return setScalar(v, val, false, key+" (from "+name+")")
		}
		return nil
	})
	if err != nil {
		return err
	}
	for name := range env {
		if !known[name] {
			return fmt.Errorf("%w: %s: no such configuration key", ErrInvalid, name)
		}
	}
	return nil
}

// EnvName is the environment variable that overrides a key path such as
// "sip.listen.udp".
func EnvName(key string) string {
	return EnvPrefix + strings.ToUpper(strings.ReplaceAll(key, ".", "_"))
}

// walkScalars calls fn for every scalar field of a struct tree (lists are not
// overridable from the environment).
func walkScalars(v reflect.Value, key string, fn func(reflect.Value, string) error) error {
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		field := v.Field(i)
		child := joinKey(key, tagName(t.Field(i)))
		switch {
		case field.Kind() == reflect.Struct:
			if err := walkScalars(field, child, fn); err != nil {
				return err
			}
		case field.Kind() == reflect.Slice:
		default:
			if err := fn(field, child); err != nil {
				return err
			}
		}
	}
	return nil
}

// ScalarKeys lists every scalar key path, for documentation checks.
func ScalarKeys() []string {
	var keys []string
	_ = walkScalars(reflect.ValueOf(&Config{}).Elem(), "", func(_ reflect.Value, key string) error {
		keys = append(keys, key)
		return nil
	})
	return keys
}
