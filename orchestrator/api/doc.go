// Package api is Weft's front door: Connect handlers for WorkflowService
// and DefinitionService (Connect, gRPC and gRPC-Web on one h2c port), gRPC
// health and server reflection.
//
// It is the one place where domain errors become Connect codes (toConnect).
// Starts, signals and cancels are appended to the workflow's history on
// its external subject (a start only when the history is empty), where
// the orchestrators' durable consumer picks them up; reads fold the
// history, the source of truth.
package api
