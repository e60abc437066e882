package definition

import (
	"maps"
	"slices"

	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
	"cel.dev/cel-go/common/types/traits"
)

// orderedAdapter converts the values of a scope for CEL as the default
// adapter does, except that maps iterate in key order: an expression that
// ranges over a map (m.map(k, ...), m.all(...), m.exists(...)) then
// evaluates the same on every run, so a replay decides the same.
type orderedAdapter struct{}

// NativeToValue converts v, with maps (at any depth) ordered.
func (orderedAdapter) NativeToValue(v any) ref.Val {
	switch x := v.(type) {
	case map[string]any:
		return orderedMap{Mapper: types.NewStringInterfaceMap(orderedAdapter{}, x), keys: slices.Sorted(maps.Keys(x))}
	case []any:
		return types.NewDynamicList(orderedAdapter{}, x)
	}
	return types.DefaultTypeAdapter.NativeToValue(v)
}

// orderedMap is a map whose iterator yields its keys in order.
type orderedMap struct {
	traits.Mapper
	keys []string
}

// Iterator yields the map's keys in order.
func (m orderedMap) Iterator() traits.Iterator {
	return types.NewStringList(types.DefaultTypeAdapter, m.keys).(traits.Lister).Iterator()
}
