//! `execute` and `rollback` with `--format json`: one JSON object per line
//! on stdout for every event, for a program to follow (README, "Events for
//! automation"). No bars, no prompts.
//!
//! Every line has `"event"` (its kind, kebab-case) and `"at"` (UTC, ISO 8601
//! with milliseconds). Texts are masked exactly as the renderers mask them.
//! A write that fails (the reader went away) is dropped: the run goes on,
//! and its outcome is in the journal.

use crate::engine::events::{Event, Sink};
use serde_json::{json, Map, Value};
use std::io::Write;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// `2026-12-03T13:52:04.123Z`.
pub fn utc_millis(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let base = crate::engine::journal::utc(d.as_secs());
    // `utc` ends in `Z`; the milliseconds go before it.
    let stem = base.strip_suffix('Z').unwrap_or(&base);
    format!("{stem}.{:03}Z", d.subsec_millis())
}

fn ms(d: Duration) -> u64 {
    d.as_millis().min(u128::from(u64::MAX)) as u64
}

/// The JSON object of one engine event (already masked by the caller).
pub fn event_value(e: &Event) -> Value {
    match e {
        Event::PhaseStarted {
            index,
            total,
            name,
            hosts,
        } => {
            json!({"event": "phase-started", "index": index, "total": total, "phase": name, "hosts": hosts})
        }
        Event::PhaseDone { index, name, took } => {
            json!({"event": "phase-done", "index": index, "phase": name, "took_ms": ms(*took)})
        }
        Event::StepStarted { n, host, what } => {
            json!({"event": "step-started", "step": n, "host": host, "what": what})
        }
        Event::StepDone {
            n,
            host,
            what,
            took,
        } => {
            json!({"event": "step-ok", "step": n, "host": host, "what": what, "took_ms": ms(*took)})
        }
        Event::StepFailed {
            n,
            host,
            what,
            error,
        } => {
            json!({"event": "step-failed", "step": n, "host": host, "what": what, "error": error})
        }
        Event::Note { host, message } => {
            json!({"event": "note", "host": host, "message": message})
        }
        Event::RollbackStarted { reason, steps } => {
            json!({"event": "rollback-started", "reason": reason, "steps": steps})
        }
        Event::UndoStarted { n, host, what } => {
            json!({"event": "undo-started", "step": n, "host": host, "what": what})
        }
        Event::UndoDone {
            n,
            host,
            what,
            took,
        } => {
            json!({"event": "undo-ok", "step": n, "host": host, "what": what, "took_ms": ms(*took)})
        }
        Event::UndoSkipped { n, host, why } => {
            json!({"event": "undo-skipped", "step": n, "host": host, "why": why})
        }
        Event::UndoFailed {
            n,
            host,
            what,
            error,
        } => {
            json!({"event": "undo-failed", "step": n, "host": host, "what": what, "error": error})
        }
        Event::Finished { summary, took } => {
            json!({"event": "finished", "summary": summary, "took_ms": ms(*took)})
        }
    }
}

/// Writes JSON lines to a writer (stdout in a run), one whole line per
/// write, flushed, never interleaved.
pub struct JsonLines<W: Write + Send> {
    out: Mutex<W>,
    clock: fn() -> SystemTime,
}

impl JsonLines<std::io::Stdout> {
    pub fn stdout() -> JsonLines<std::io::Stdout> {
        JsonLines::with_clock(std::io::stdout(), SystemTime::now)
    }
}

impl<W: Write + Send> JsonLines<W> {
    pub fn with_clock(out: W, clock: fn() -> SystemTime) -> JsonLines<W> {
        JsonLines {
            out: Mutex::new(out),
            clock,
        }
    }

    /// Writes `v` (an object) with `"at"` added after `"event"`. Texts in
    /// it must be masked already.
    pub fn write(&self, v: Value) {
        let mut rest = match v {
            Value::Object(m) => m,
            _ => Map::new(),
        };
        let event = rest.remove("event").unwrap_or(Value::Null);
        rest.remove("at");
        // `event` and `at` first, for a person reading the stream; the rest
        // as serde_json orders it.
        let tail = Value::Object(rest).to_string();
        let tail = tail.strip_prefix('{').unwrap_or(&tail);
        let at = Value::String(utc_millis((self.clock)()));
        let sep = if tail == "}" { "" } else { "," };
        let mut line = format!("{{\"event\":{event},\"at\":{at}{sep}{tail}");
        line.push('\n');
        if let Ok(mut w) = self.out.lock() {
            // Nowhere to report a failed write: the run goes on.
            let _ = w.write_all(line.as_bytes()).and_then(|_| w.flush());
        }
    }
}

impl<W: Write + Send> Sink for JsonLines<W> {
    fn emit(&self, e: &Event) {
        self.write(event_value(&e.masked()));
    }
}

/// Events of the command itself, beside the engine's: written by `cli`.
/// `Some` only with `--format json`.
pub fn stdout_events(json: bool) -> Option<JsonLines<std::io::Stdout>> {
    json.then(JsonLines::stdout)
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::ui::progress::tests::Buf;

    fn fixed() -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(1_764_770_000_123)
    }

    #[test]
    fn each_event_is_one_parsable_line_with_its_kind_and_time() {
        let buf = Buf::default();
        let sink = JsonLines::with_clock(buf.clone(), fixed);
        let events = vec![
            Event::PhaseStarted {
                index: 1,
                total: 10,
                name: "stop the new prod".into(),
                hosts: vec!["h1".into()],
            },
            Event::StepStarted {
                n: 1,
                host: "h1".into(),
                what: "stop ui".into(),
            },
            Event::StepDone {
                n: 1,
                host: "h1".into(),
                what: "stop ui".into(),
                took: Duration::from_millis(1500),
            },
            Event::StepFailed {
                n: 2,
                host: "h1".into(),
                what: "start ui".into(),
                error: "exited 1\nsecond line".into(),
            },
            Event::Note {
                host: None,
                message: "a note".into(),
            },
            Event::RollbackStarted {
                reason: "step 2 failed".into(),
                steps: 1,
            },
            Event::UndoStarted {
                n: 1,
                host: "h1".into(),
                what: "start ui".into(),
            },
            Event::UndoDone {
                n: 1,
                host: "h1".into(),
                what: "start ui".into(),
                took: Duration::from_millis(7),
            },
            Event::UndoSkipped {
                n: 2,
                host: "h1".into(),
                why: "as before".into(),
            },
            Event::UndoFailed {
                n: 3,
                host: "h1".into(),
                what: "x".into(),
                error: "y".into(),
            },
            Event::PhaseDone {
                index: 1,
                name: "stop the new prod".into(),
                took: Duration::from_millis(20),
            },
            Event::Finished {
                summary: "rolled back".into(),
                took: Duration::from_secs(3),
            },
        ];
        for e in &events {
            sink.emit(e);
        }
        let text = buf.text();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), events.len());
        let kinds: Vec<String> = lines
            .iter()
            .map(|l| {
                let v: Value = serde_json::from_str(l).expect(l);
                assert_eq!(v["at"], "2025-12-03T13:53:20.123Z", "{l}");
                assert!(l.starts_with("{\"event\":"), "{l}");
                v["event"].as_str().expect("kind").to_string()
            })
            .collect();
        assert_eq!(
            kinds,
            [
                "phase-started",
                "step-started",
                "step-ok",
                "step-failed",
                "note",
                "rollback-started",
                "undo-started",
                "undo-ok",
                "undo-skipped",
                "undo-failed",
                "phase-done",
                "finished"
            ]
        );
        let ok: Value = serde_json::from_str(lines[2]).expect("json");
        assert_eq!(ok["took_ms"], 1500);
        assert_eq!(ok["step"], 1);
        // A newline in an error is escaped by JSON: the event stays one line.
        let failed: Value = serde_json::from_str(lines[3]).expect("json");
        assert_eq!(failed["error"], "exited 1\nsecond line");
    }

    #[test]
    fn a_closed_reader_does_not_stop_the_run() {
        struct Closed;
        impl Write for Closed {
            fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
                Err(std::io::ErrorKind::BrokenPipe.into())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Err(std::io::ErrorKind::BrokenPipe.into())
            }
        }
        let sink = JsonLines::with_clock(Closed, fixed);
        sink.emit(&Event::Note {
            host: None,
            message: "x".into(),
        });
        sink.write(json!({"event": "outcome", "exit_code": 0}));
    }
}
