//! Crash points for the recovery tests.
//!
//! When the environment variable `VERBATIM_FAILPOINT` names a point (e.g.
//! `after_rename`), the process aborts there, as `kill -9` would at that exact
//! moment. Points: `before_rename`, `mid_rename` (after the first of a range's
//! renames), `after_rename` (files durable, Kafka offset not yet committed).
//! Unset in production; checking costs one cached lookup.

use std::sync::OnceLock;

/// Aborts the process if `VERBATIM_FAILPOINT` equals `name`.
pub fn hit(name: &str) {
    static POINT: OnceLock<Option<String>> = OnceLock::new();
    let point = POINT.get_or_init(|| {
        std::env::var("VERBATIM_FAILPOINT")
            .ok()
            .filter(|s| !s.is_empty())
    });
    if point.as_deref() == Some(name) {
        eprintln!("verbatim: failpoint {name} hit, aborting");
        std::process::abort();
    }
}
