//! The wire format of the operator socket (docs/control-protocol.md): one
//! JSON object per line each way. Parsing is a pure function of the bytes of
//! one line, so it is unit-tested and fuzzed (`fuzz/fuzz_targets/
//! control_request.rs`) without a socket.

use super::{CtlError, PROTOCOL_VERSION};
use serde_json::{json, Map, Value};

/// Longest request line the server reads, newline excluded (64 KiB). A longer
/// one gets a `too-large` reply and the connection is closed: nothing
/// legitimate is that big, and the server's buffers stay bounded.
pub const MAX_LINE: usize = 64 * 1024;

/// A well-formed request.
#[derive(Clone, Debug, PartialEq)]
pub struct Request {
    /// The client's `id` (a JSON string or integer), echoed in the reply.
    pub id: Value,
    /// The command name (`hello`, `stats`, `flow-logs.create`, ...).
    pub cmd: String,
    /// The arguments: always an object (`{}` when the request had none).
    pub args: Value,
}

/// A parse failure: the request's `id` when it could be read (to echo it),
/// and the error to reply with.
pub type ParseError = (Option<Value>, CtlError);

/// Parses one request line (without its newline; a trailing `\r` is
/// tolerated). Checks, in order: size, JSON, object, `v` (absent or not an
/// integer: `bad-request`; not 1: `unsupported-version`), `id` (a string or an
/// integer), `cmd` (a non-empty string), `args` (absent, `null` or an object).
/// Other top-level keys are ignored, so later versions can add some.
pub fn parse_request(line: &[u8]) -> Result<Request, ParseError> {
    if line.len() > MAX_LINE {
        return Err((
            None,
            CtlError::new(
                "too-large",
                format!(
                    "request of {} bytes; at most {MAX_LINE} bytes per line",
                    line.len()
                ),
            ),
        ));
    }
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let value: Value = serde_json::from_slice(line).map_err(|e| {
        (
            None,
            bad(format!(
                "not JSON ({e}); send one JSON object per line, e.g. \
                 {{\"v\":1,\"id\":1,\"cmd\":\"hello\"}}"
            )),
        )
    })?;
    let Value::Object(mut obj) = value else {
        return Err((
            None,
            bad(format!(
                "the request is a JSON {}, not an object",
                kind(&value)
            )),
        ));
    };
    // The id to echo, when it is usable, even if the rest is wrong.
    let id = match obj.remove("id") {
        Some(id @ Value::String(_)) => Some(id),
        // Integers only: a fraction or an exponent would not come back
        // bit for bit (JSON numbers are parsed to f64 and printed again).
        Some(Value::Number(n)) if n.is_i64() || n.is_u64() => Some(Value::Number(n)),
        Some(other) => {
            return Err((
                None,
                bad(format!(
                    "\"id\" is {}; it must be a string or an integer",
                    describe(&other)
                )),
            ))
        }
        None => None,
    };
    match obj.get("v") {
        None => {
            return Err((
                id,
                bad(format!(
                    "missing \"v\" (the protocol version, {PROTOCOL_VERSION})"
                )),
            ))
        }
        Some(Value::Number(n)) if n.as_u64() == Some(u64::from(PROTOCOL_VERSION)) => {}
        Some(Value::Number(n)) if n.is_u64() || n.is_i64() => {
            return Err((
                id,
                CtlError::new(
                    "unsupported-version",
                    format!(
                        "protocol version {n} is not supported; this server speaks \
                         version {PROTOCOL_VERSION}"
                    ),
                ),
            ))
        }
        Some(other) => {
            return Err((
                id,
                bad(format!(
                    "\"v\" is {}; it must be the integer {PROTOCOL_VERSION}",
                    describe(other)
                )),
            ))
        }
    }
    let Some(id) = id else {
        return Err((None, bad("missing \"id\" (a string or an integer)")));
    };
    let cmd = match obj.remove("cmd") {
        Some(Value::String(s)) if !s.is_empty() => s,
        Some(Value::String(_)) => return Err((Some(id), bad("\"cmd\" is empty"))),
        Some(other) => {
            return Err((
                Some(id),
                bad(format!(
                    "\"cmd\" is a {}; it must be a string",
                    kind(&other)
                )),
            ))
        }
        None => return Err((Some(id), bad("missing \"cmd\" (the command name)"))),
    };
    let args = match obj.remove("args") {
        None | Some(Value::Null) => Value::Object(Map::new()),
        Some(a @ Value::Object(_)) => a,
        Some(other) => {
            return Err((
                Some(id),
                bad(format!(
                    "\"args\" is a {}; it must be an object",
                    kind(&other)
                )),
            ))
        }
    };
    Ok(Request { id, cmd, args })
}

/// The reply line to a request with `id` (`null` when unknown): the result
/// or the error, serialised on one line, newline included.
pub fn reply_line(id: Option<&Value>, reply: &Result<Value, CtlError>) -> Vec<u8> {
    let id = id.cloned().unwrap_or(Value::Null);
    let v = match reply {
        Ok(result) => json!({ "v": PROTOCOL_VERSION, "id": id, "ok": true, "result": result }),
        Err(e) => json!({
            "v": PROTOCOL_VERSION,
            "id": id,
            "ok": false,
            "error": { "code": e.code, "message": e.message },
        }),
    };
    // Compact serialisation escapes control characters inside strings, so
    // the only newline is the terminator.
    let mut out = serde_json::to_vec(&v).unwrap_or_else(|_| {
        // Unreachable for a `Value` with string keys; never panic anyway.
        br#"{"v":1,"id":null,"ok":false,"error":{"code":"internal","message":"reply not serialisable"}}"#
            .to_vec()
    });
    out.push(b'\n');
    out
}

/// An error reply line for a request with `id`.
pub fn error_line(id: Option<&Value>, err: CtlError) -> Vec<u8> {
    reply_line(id, &Err(err))
}

fn bad(message: impl Into<String>) -> CtlError {
    CtlError::new("bad-request", message)
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// `kind`, with the value itself when it is short (for `"v": 1.5`).
fn describe(v: &Value) -> String {
    match v {
        Value::Number(n) => format!("the number {n}"),
        Value::String(s) if s.len() <= 16 => format!("the string {s:?}"),
        other => format!("a {}", kind(other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(line: &str) -> (Option<Value>, &'static str) {
        let (id, e) = parse_request(line.as_bytes()).unwrap_err();
        (id, e.code)
    }

    #[test]
    fn well_formed() {
        let r = parse_request(br#"{"v":1,"id":7,"cmd":"stats"}"#).unwrap();
        assert_eq!(r.id, json!(7));
        assert_eq!(r.cmd, "stats");
        assert_eq!(r.args, json!({}));
        let r = parse_request(
            b"{\"v\":1,\"id\":\"a\",\"cmd\":\"x\",\"args\":{\"k\":[1]},\"extra\":0}\r",
        )
        .unwrap();
        assert_eq!(r.id, json!("a"));
        assert_eq!(r.args, json!({"k": [1]}));
        let r = parse_request(br#"{"v":1,"id":-5,"cmd":"x","args":null}"#).unwrap();
        assert_eq!(r.args, json!({}));
        let r = parse_request(br#"{"v":1,"id":18446744073709551615,"cmd":"x"}"#).unwrap();
        assert_eq!(r.id, json!(u64::MAX));
    }

    #[test]
    fn malformed() {
        assert_eq!(err("nope"), (None, "bad-request"));
        assert_eq!(err(""), (None, "bad-request"));
        assert_eq!(err("[1]"), (None, "bad-request"));
        assert_eq!(err(r#"{"v":1,"cmd":"x"}"#), (None, "bad-request"));
        assert_eq!(err(r#"{"v":1,"id":[1],"cmd":"x"}"#), (None, "bad-request"));
        assert_eq!(err(r#"{"v":1,"id":1.5,"cmd":"x"}"#), (None, "bad-request"));
        assert_eq!(err(r#"{"v":1,"id":1e3,"cmd":"x"}"#), (None, "bad-request"));
        assert_eq!(
            err(r#"{"v":1,"id":-92233720368344112240,"cmd":"x"}"#),
            (None, "bad-request")
        );
        assert_eq!(err(r#"{"v":1,"id":3}"#), (Some(json!(3)), "bad-request"));
        assert_eq!(
            err(r#"{"v":1,"id":3,"cmd":""}"#),
            (Some(json!(3)), "bad-request")
        );
        assert_eq!(
            err(r#"{"v":1,"id":3,"cmd":5}"#),
            (Some(json!(3)), "bad-request")
        );
        assert_eq!(
            err(r#"{"v":1,"id":3,"cmd":"x","args":[]}"#),
            (Some(json!(3)), "bad-request")
        );
        assert_eq!(
            err(r#"{"id":"q","cmd":"x"}"#),
            (Some(json!("q")), "bad-request")
        );
        assert_eq!(
            err(r#"{"v":"1","id":1,"cmd":"x"}"#),
            (Some(json!(1)), "bad-request")
        );
        assert_eq!(
            err(r#"{"v":1.0,"id":1,"cmd":"x"}"#),
            (Some(json!(1)), "bad-request")
        );
        assert_eq!(
            err(r#"{"v":2,"id":1,"cmd":"x"}"#),
            (Some(json!(1)), "unsupported-version")
        );
        assert_eq!(err(r#"{"v":-1,"cmd":"x"}"#), (None, "unsupported-version"));
        let deep = "[".repeat(10_000);
        assert_eq!(err(&deep), (None, "bad-request"));
        let big = vec![b' '; MAX_LINE + 1];
        assert_eq!(parse_request(&big).unwrap_err().1.code, "too-large");
    }

    #[test]
    fn replies_are_one_line() {
        let id = json!("a\nb");
        let line = reply_line(Some(&id), &Ok(json!({"text": "x\ny\n"})));
        assert_eq!(line.iter().filter(|&&b| b == b'\n').count(), 1);
        assert_eq!(line.last(), Some(&b'\n'));
        let v: Value = serde_json::from_slice(&line).unwrap();
        assert_eq!(v["id"], id);
        assert_eq!(v["ok"], json!(true));
        let line = error_line(None, CtlError::new("forbidden", "no\n"));
        let v: Value = serde_json::from_slice(&line).unwrap();
        assert_eq!(
            v,
            json!({"v": 1, "id": null, "ok": false,
                   "error": {"code": "forbidden", "message": "no\n"}})
        );
    }
}
