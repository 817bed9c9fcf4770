//! Fuzzes `flowlog::control::proto::parse_request`, the parser of the
//! operator socket's request lines (docs/control-protocol.md). Besides "no
//! panic" it checks that a parsed request has the promised shape, that it
//! keeps its id and command after a round trip through JSON, and that every
//! reply the server would build from it is one JSON line that echoes the id
//! exactly.
//!
//! Seeds: `fuzz/seeds/control_request/`.
//! Run: `cargo +nightly fuzz run control_request fuzz/corpus/control_request
//! fuzz/seeds/control_request -- -max_total_time=600`; without nightly,
//! `cargo build --bin control_request` (in `fuzz/`) and
//! `target/debug/control_request seeds/control_request/*` replays the seeds
//! (and any crash file) once each.

#![no_main]

use flowlog::control::proto::{error_line, parse_request, reply_line, MAX_LINE};
use flowlog::control::CtlError;
use libfuzzer_sys::fuzz_target;
use serde_json::{json, Value};

/// Every code `parse_request` may return.
const CODES: [&str; 3] = ["bad-request", "too-large", "unsupported-version"];

/// One line, newline-terminated, a JSON object of protocol version 1 that
/// echoes `id` (null when unknown).
fn check_reply(line: &[u8], id: Option<&Value>, ok: bool) {
    assert_eq!(line.last(), Some(&b'\n'), "reply without its newline");
    assert_eq!(
        line.iter().filter(|&&b| b == b'\n').count(),
        1,
        "reply on more than one line"
    );
    let v: Value = serde_json::from_slice(line).expect("reply is JSON");
    assert_eq!(v["v"], json!(1));
    assert_eq!(v["id"], id.cloned().unwrap_or(Value::Null));
    assert_eq!(v["ok"], json!(ok));
    if ok {
        assert!(v.get("result").is_some());
    } else {
        assert!(v["error"]["code"].is_string());
        assert!(v["error"]["message"].is_string());
    }
}

fuzz_target!(|data: &[u8]| {
    match parse_request(data) {
        Ok(req) => {
            assert!(data.len() <= MAX_LINE);
            assert!(req.id.is_string() || req.id.is_i64() || req.id.is_u64());
            assert!(!req.cmd.is_empty());
            assert!(req.args.is_object());
            // What an echoing handler and a failing one would send back.
            check_reply(
                &reply_line(Some(&req.id), &Ok(req.args.clone())),
                Some(&req.id),
                true,
            );
            let err = CtlError::new("invalid", format!("{}\n{}", req.cmd, req.args));
            check_reply(&reply_line(Some(&req.id), &Err(err)), Some(&req.id), false);
            // The same request, written by a client, parses to the same id
            // and command (args may hold floats, which serde_json does not
            // read back bit for bit; they are the handler's business).
            let again = serde_json::to_vec(
                &json!({"v": 1, "id": req.id, "cmd": req.cmd, "args": req.args}),
            )
            .expect("serialisable");
            if again.len() <= MAX_LINE {
                let back = parse_request(&again).expect("round trip");
                assert_eq!((&back.id, &back.cmd), (&req.id, &req.cmd));
                assert!(back.args.is_object());
            }
        }
        Err((id, e)) => {
            assert!(CODES.contains(&e.code), "unexpected code {}", e.code);
            assert!(!e.message.is_empty());
            if let Some(id) = &id {
                assert!(id.is_string() || id.is_i64() || id.is_u64());
            }
            check_reply(&error_line(id.as_ref(), e), id.as_ref(), false);
        }
    }
});
