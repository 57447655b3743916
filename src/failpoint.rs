//! Fault points for the recovery and backpressure tests.
//!
//! The environment variable `VERBATIM_FAILPOINT` names a point and what
//! happens there:
//! - `NAME` aborts the process at that point, as `kill -9` would at that
//!   exact moment. Points (see [`crate::sink::commit`]): `before_marker`
//!   (parts staged, no marker), `mid_publish` (marker created, the first of
//!   a range's files published), `after_publish` (range published, Kafka
//!   offset not yet committed).
//! - `NAME:sleep=SECS` sleeps SECS seconds the first time the point is hit
//!   (a stalled disk). Point: `sink_write` (before a batch is written).
//!
//! Unset in production; checking costs one cached lookup.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

/// What the configured point does.
#[derive(Debug, PartialEq)]
enum Action {
    Abort,
    SleepOnce(Duration),
}

fn parse(spec: &str) -> Option<(String, Action)> {
    let spec = spec.trim();
    if spec.is_empty() {
        return None;
    }
    match spec.split_once(':') {
        None => Some((spec.to_string(), Action::Abort)),
        Some((name, action)) => {
            let secs: f64 = action.strip_prefix("sleep=")?.parse().ok()?;
            let d = Duration::try_from_secs_f64(secs).ok()?;
            Some((name.to_string(), Action::SleepOnce(d)))
        }
    }
}

/// Acts if `VERBATIM_FAILPOINT` names `name`: aborts, or sleeps once.
pub fn hit(name: &str) {
    static POINT: OnceLock<Option<(String, Action)>> = OnceLock::new();
    static SLEPT: AtomicBool = AtomicBool::new(false);
    let point = POINT.get_or_init(|| parse(&std::env::var("VERBATIM_FAILPOINT").ok()?));
    match point {
        Some((p, Action::Abort)) if p == name => {
            eprintln!("verbatim: failpoint {name} hit, aborting");
            std::process::abort();
        }
        Some((p, Action::SleepOnce(d))) if p == name && !SLEPT.swap(true, Ordering::SeqCst) => {
            eprintln!(
                "verbatim: failpoint {name} hit, sleeping {} s",
                d.as_secs_f64()
            );
            std::thread::sleep(*d);
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse() {
        assert_eq!(parse(""), None);
        assert_eq!(
            parse("after_publish"),
            Some(("after_publish".into(), Action::Abort))
        );
        assert_eq!(
            parse("sink_write:sleep=2.5"),
            Some((
                "sink_write".into(),
                Action::SleepOnce(Duration::from_millis(2500))
            ))
        );
        assert_eq!(parse("sink_write:sleep=x"), None);
        assert_eq!(parse("sink_write:nap=1"), None);
    }
}
