//! Diagnostics written to stderr.

use std::io::Write;
use std::sync::Mutex;

static WARNED: Mutex<Vec<&'static str>> = Mutex::new(Vec::new());

/// Writes `message` to stderr the first time it is given; never panics,
/// even with stderr closed.
pub fn warn_once(message: &'static str) {
    let mut warned = WARNED.lock().unwrap_or_else(|e| e.into_inner());
    if warned.contains(&message) {
        return;
    }
    warned.push(message);
    let _ = writeln!(std::io::stderr(), "{message}");
}
