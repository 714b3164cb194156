// Package function runs serverless functions on the agent, WAGI style: a
// WASI command module is deployed once (compiled and kept by the wasm
// runtime) and instantiated afresh for every HTTP request, as RFC 3875's CGI
// runs a script.
//
// Deploy takes a wasm.Runtime and a Config and returns a Function; nothing
// runs until a request comes. Serve (or ServeHTTP) then starts one instance
// with the request described in its environment (REQUEST_METHOD, PATH_INFO,
// QUERY_STRING, CONTENT_TYPE, CONTENT_LENGTH, HTTP_* and the rest, see
// Env), the request body on its standard input, and reads its standard
// output as a CGI response: header lines, an empty line, then the body,
// which is streamed to the client as the module writes it. The instance is
// closed when it exits, when it runs past Config.Timeout (504) or when the
// client goes away, so an idle function holds no instance at all: it scales
// to zero. At most Config.MaxConcurrency instances of one function run at
// once; further requests wait in a queue of Config.MaxQueue, then get 503.
//
// The module's standard error and one line per invocation (method, path,
// status, duration and "cold": every instance is started for its request;
// there is no warm pool yet) go to Config.Log, which the agent points
// at the pod's log. Stats counts invocations, cold starts, errors and the
// requests in flight.
//
// The CGI response parser (ParseHeader) and the environment builder (Env)
// are pure functions of their input, bounded in what they accept, and
// fuzzed.
package function
