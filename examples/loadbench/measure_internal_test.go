package main

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestRatioTextNeverShowsABelowTargetRatioAsTheTarget(t *testing.T) {
	for _, tc := range []struct {
		r, target float64
		want      string
	}{
		{0.61, 0.60, "0.61"},
		{0.60, 0.60, "0.60"},
		{0.6004, 0.60, "0.60"},
		{0.598, 0.60, "0.598"},
		{0.5951, 0.60, "0.595"},
		{0.594, 0.60, "0.59"},
		{0.52, 0.45, "0.52"},
	} {
		assert.Equal(t, tc.want, ratioText(tc.r, tc.target), "ratio %v, target %v", tc.r, tc.target)
	}
}
