package main

import (
	"github.com/beaconhq/beacon/internal/monitors/monitorsapi"
	"github.com/beaconhq/beacon/internal/platform"
	"github.com/beaconhq/beacon/internal/workflow/workflowapi"
)

// domains are the modules this binary serves and works, one line each. A
// domain's migrations come with it (it registers them when linked).
func domains() []platform.Module {
	return []platform.Module{
		monitorsapi.Module(),
		workflowapi.Module(),
	}
}
