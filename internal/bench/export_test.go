package bench

// ProcessUsage is processUsage, for the scale tests.
var ProcessUsage = processUsage
