// Package builtin provides Weft's built-in task types. Register them with
// Handlers; every handler takes a normalized JSON-like input (see
// eventstore/value) and fails with an *executor.Error whose Type a retry
// policy can match.
//
// # echo
//
// Output is the input, unchanged. Never fails.
//
// # log
//
// Input is either {message: string, level?: "debug"|"info"|"warn"|"error",
// fields?: map} (a map with a string message and no other keys), logged
// with message, level (default info) and fields as attributes; or any other
// value, logged at info with message "log" and the value under attribute
// "value". Every record carries workflow_id, step (the step path) and
// attempt. Output is null. A bad level or non-map fields fails with
// "invalid_input" (non-retryable).
//
// # http
//
// Input:
//
//	{method?: string (default GET; GET, HEAD, POST, PUT, PATCH, DELETE or OPTIONS),
//	 url: string (http or https),
//	 headers?: map[string]string (values without control characters; tab is fine),
//	 query?: map[string]string (added to the url's query),
//	 body?: any,
//	 response?: "json" | "text" | "bytes" (how to return the body; default below)}
//
// A string body is sent as-is with Content-Type text/plain; any other
// non-null body is sent as JSON with Content-Type application/json; a
// header given in the input wins. Each request carries User-Agent: weft and
// Idempotency-Key: the task's idempotency key (same for every attempt of
// the step), unless the input's headers set them. The attempt's context
// bounds the request; redirects are followed.
//
// Config.HTTPDeny (weft executor and weft server: --http-deny) lists
// address ranges the task must not connect to. The address is checked as
// it is dialed, so a name that resolves to a denied address, an IPv4
// address written as IPv6 (::ffff:127.0.0.1) and a redirect to a denied
// address are all refused, before anything is sent. With HTTPDeny no proxy
// is used: HTTP_PROXY, HTTPS_PROXY and a Transport's Proxy are ignored,
// since a proxy would connect in the task's stead. A denied connection
// fails the step with "denied", naming the address and its range.
//
// Output, for 2xx and 3xx responses:
//
//	{status: int,
//	 headers: map (canonical names; repeated values joined with ", "),
//	 headers_base64?: map (only present for header values that are not valid UTF-8:
//	                  those values, base64-encoded, instead of in headers),
//	 body: the body as response says, or
//	 body_base64: the body's bytes, base64-encoded (standard encoding)}
//
// The response option:
//
//	(unset)  the decoded JSON when the Content-Type is application/json or
//	         *+json and the body parses; else as text
//	json     the decoded JSON whatever the Content-Type (an empty body is
//	         null); a body that does not parse fails with invalid_output
//	text     the body as a string when it is valid UTF-8; else body_base64
//	         (check for it: has(steps.x.output.body_base64))
//	bytes    always body_base64
//
// Decoded JSON must follow the rule for values (see eventstore/value.Check):
// nested at most 64 levels deep. A deeper body fails with invalid_output;
// response: text returns it as text instead.
//
// Errors:
//
//	invalid_input        bad method, missing url, bad scheme, non-string header or query values,
//	                     a header value with a control character, an unknown response option     non-retryable
//	invalid_output       a JSON body nested too deeply, or not JSON with response: json           non-retryable
//	network              connection or transport failure                                          retryable
//	timeout              the attempt's deadline passed                                            retryable
//	canceled             the attempt's context was canceled (worker stopping)                     retryable
//	denied               the address dialed is in a Config.HTTPDeny range (--http-deny)           non-retryable
//	response_too_large   a success body over Config.MaxBodyBytes                                  non-retryable
//	rate_limited         429                                                                      retryable
//	unavailable          503                                                                      retryable
//	server_error         other 5xx                                                                retryable
//	bad_request          400                                                                      non-retryable
//	unauthorized         401                                                                      non-retryable
//	forbidden            403                                                                      non-retryable
//	not_found            404                                                                      non-retryable
//	conflict             409                                                                      non-retryable
//	gone                 410                                                                      non-retryable
//	unprocessable        422                                                                      non-retryable
//	client_error         other 4xx                                                                non-retryable
//	not_configured       Config.HTTPDeny with an HTTPClient Transport that is not *http.Transport  non-retryable
//
// Status errors say the status and up to 200 bytes of the response body
// (bytes that are not UTF-8 shown as U+FFFD).
// On 429 and 503 a Retry-After header in seconds sets the delay before the
// next attempt.
//
// # nats.publish
//
// Input:
//
//	{subject: string (no wildcards or whitespace),
//	 data?: any (a string is sent raw, other values as JSON, absent means empty),
//	 headers?: map[string]string,
//	 jetstream?: bool}
//
// Messages carry the header Idempotency-Key (unless headers set it). A core
// publish is flushed before the handler returns, so success means the
// server received it; output is {subject}. With jetstream: true the message
// is published to JetStream with the idempotency key as its Nats-Msg-Id, so
// the stream drops retried duplicates; output is {stream, seq, duplicate}.
//
// Subjects that belong to NATS or Weft are refused with "invalid_input":
// those starting with $ ($JS., $KV., $O., $SYS., ...), _INBOX. or weft.
// (see eventstore.ReservedSubject), unless one of Config.PublishAllow's
// patterns matches the subject. So a step cannot call JetStream's API or
// write into a workflow's history.
//
// A publish the server refuses (the permissions of the executor's NATS
// user, or a subject the server keeps from clients) fails with "denied",
// naming the subject: the server drops such a message and says so only as
// an error of the connection, before it answers the next flush (a
// JetStream publish, which gets no ack, flushes every 100 ms while it
// waits for one). Handlers records every error the connection is told
// of (it sets the connection's error handler, calling the one it had),
// so another subject's refusal in the same moments does not hide this
// publish's own.
//
// Errors: "invalid_input" (non-retryable) for bad input; "denied"
// (non-retryable) for a publish the server refused; "nats" (retryable)
// when publishing, flushing or the JetStream ack fails; "not_configured"
// (non-retryable) when Config.NATS is nil.
package builtin
