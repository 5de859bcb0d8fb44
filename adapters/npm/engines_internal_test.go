package npm

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestSatisfies(t *testing.T) {
	t3 := "^22.16 || ^23.11 || >=24.10" // t3 0.0.38's engines.node
	for _, tc := range []struct {
		node, rng string
		want      bool
	}{
		{"v20.20.2", t3, false},
		{"v22.15.9", t3, false},
		{"v22.16.0", t3, true},
		{"v22.99.1", t3, true},
		{"v23.10.0", t3, false},
		{"v23.11.0", t3, true},
		{"v24.9.9", t3, false},
		{"v24.10.0", t3, true},
		{"v26.0.0", t3, true},
		{"v20.20.2", ">=20", true},
		{"v19.9.0", ">=20", false},
		{"v20.20.2", ">20", false},
		{"v21.0.0", ">20", true},
		{"v20.0.1", ">20.0.0", true},
		{"v20.0.0", ">20.0.0", false},
		{"v20.20.2", "<=20", true},
		{"v21.0.0", "<=20", false},
		{"v20.20.2", "<21", true},
		{"v21.0.0", "<21", false},
		{"v20.20.2", "20", true},
		{"v20.20.2", "20.x", true},
		{"v20.20.2", "=20.20.2", true},
		{"v20.20.3", "20.20.2", false},
		{"v20.20.2", "~20.19", false},
		{"v20.19.9", "~20.19", true},
		{"v20.20.2", "^20.10.1", true},
		{"v21.0.0", "^20.10.1", false},
		{"v0.3.9", "^0.3.1", true},
		{"v0.4.0", "^0.3.1", false},
		{"v20.20.2", "18 - 20", true},
		{"v21.0.0", "18 - 20", false},
		{"v20.20.2", ">=18 <21", true},
		{"v21.0.0", ">=18 <21", false},
		{"v20.20.2", "*", true},
		{"v20.20.2", ">= 18", true},
		{"v17.0.0", ">= 18", false},
	} {
		t.Run(tc.node+" "+tc.rng, func(t *testing.T) {
			got, err := satisfies(tc.node, tc.rng)
			require.NoError(t, err)
			assert.Equal(t, tc.want, got)
		})
	}
	for _, bad := range []string{"latest", ">=20.1.2.3", "^abc", "node >= 20"} {
		_, err := satisfies("v20.20.2", bad)
		assert.Error(t, err, bad)
	}
	_, err := satisfies("twenty", ">=20")
	assert.Error(t, err)
}
