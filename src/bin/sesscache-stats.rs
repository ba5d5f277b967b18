//! `sesscache-stats DIR`: reads every process's `sesscache.<pid>.stats` in
//! a `SESSCACHE_STATS` directory and prints, per process and summed, the
//! lookups and hit ratio, the store's health (errors, rejected entries,
//! dropped changes) and the not-resumable marking mode.
//!
//! The directory may be writable by the servers' user, so every file is
//! hostile input: symlinks are not followed, only regular files are read,
//! sizes, line counts and the number of files are bounded, and a file that
//! is not a well-formed stats file is skipped with the reason.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::process::ExitCode;

/// A stats file is about 400 bytes; anything much larger is not one.
const MAX_FILE_BYTES: u64 = 16 * 1024;
const MAX_LINES: usize = 64;
/// Processes read from one directory; the rest are counted, not read.
const MAX_FILES: usize = 10_000;
/// Skipped files named in the output; the rest are counted.
const MAX_SKIPPED_SHOWN: usize = 20;

/// One process's stats file.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct Stats {
    pid: u32,
    counters: BTreeMap<String, u64>,
    marking: Option<String>,
    /// `ok`, `unreachable` or `unusable`: the word before the reason.
    store_status: Option<String>,
}

impl Stats {
    fn get(&self, name: &str) -> u64 {
        self.counters.get(name).copied().unwrap_or(0)
    }

    fn has_store(&self) -> bool {
        self.counters
            .keys()
            .any(|k| k.starts_with("store_") && k != "store_lookups_served")
    }
}

fn is_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// Parses a stats file's text, which must name `expected_pid`.
fn parse(text: &str, expected_pid: u32) -> Result<Stats, String> {
    let mut stats = Stats::default();
    let mut pid = None;
    for (n, line) in text.lines().enumerate() {
        if n >= MAX_LINES {
            return Err(format!("more than {MAX_LINES} lines"));
        }
        let Some((name, value)) = line.split_once('=') else {
            return Err(format!("line {} is not name=value", n + 1));
        };
        if !is_name(name) {
            return Err(format!("line {}: bad name", n + 1));
        }
        if name == "not_resumable_marking" {
            if !is_name(value) {
                return Err("bad not_resumable_marking".into());
            }
            stats.marking = Some(value.to_owned());
            continue;
        }
        if name == "store_status" {
            let word = value.split(':').next().unwrap_or_default();
            if !is_name(word) {
                return Err("bad store_status".into());
            }
            stats.store_status = Some(word.to_owned());
            continue;
        }
        let value: u64 = value
            .parse()
            .map_err(|_| format!("line {}: {name} is not a count", n + 1))?;
        if name == "pid" {
            pid = Some(value);
        } else if stats.counters.insert(name.to_owned(), value).is_some() {
            return Err(format!("{name} twice"));
        }
    }
    match pid {
        Some(p) if p == u64::from(expected_pid) => {
            stats.pid = expected_pid;
            Ok(stats)
        }
        Some(p) => Err(format!("names pid {p}")),
        None => Err("no pid line".into()),
    }
}

/// The pid in a name `sesscache.<pid>.stats`.
fn pid_of(file_name: &str) -> Option<u32> {
    let digits = file_name
        .strip_prefix("sesscache.")?
        .strip_suffix(".stats")?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Opens without following a symlink or blocking on a FIFO, and reads a
/// regular file of bounded size.
fn read_bounded(path: &Path) -> Result<String, String> {
    let file: File = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ELOOP) => "a symlink".to_owned(),
            _ => format!("cannot open: {e}"),
        })?;
    let meta = file.metadata().map_err(|e| format!("cannot stat: {e}"))?;
    if !meta.file_type().is_file() {
        return Err("not a regular file".into());
    }
    let mut bytes = Vec::new();
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read: {e}"))?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(format!("larger than {MAX_FILE_BYTES} bytes"));
    }
    String::from_utf8(bytes).map_err(|_| "not text".to_owned())
}

/// What a directory holds: the stats read and the files skipped.
#[derive(Default)]
struct Directory {
    processes: Vec<Stats>,
    skipped: Vec<(String, String)>,
    skipped_more: usize,
    not_read: usize,
}

impl Directory {
    fn skip(&mut self, name: String, why: String) {
        if self.skipped.len() < MAX_SKIPPED_SHOWN {
            self.skipped.push((name, why));
        } else {
            self.skipped_more += 1;
        }
    }
}

fn read_directory(dir: &Path) -> std::io::Result<Directory> {
    let mut found = Directory::default();
    for entry in std::fs::read_dir(dir)? {
        let Ok(entry) = entry else { continue };
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(pid) = pid_of(name) else { continue };
        if found.processes.len() >= MAX_FILES {
            found.not_read += 1;
            continue;
        }
        match read_bounded(&entry.path()).and_then(|text| parse(&text, pid)) {
            Ok(stats) => found.processes.push(stats),
            Err(why) => found.skip(name.to_owned(), why),
        }
    }
    found.processes.sort_by_key(|s| s.pid);
    Ok(found)
}

/// The share of lookups resumed from the cache or the store, in percent.
fn hit_ratio(hits: u64, store_served: u64, misses: u64) -> String {
    let lookups = hits.saturating_add(misses);
    if lookups == 0 {
        return "-".into();
    }
    let served = hits.saturating_add(store_served).min(lookups);
    format!("{:.1} %", 100.0 * served as f64 / lookups as f64)
}

fn row(label: &str, s: &Stats, store: bool, marking: &str) -> String {
    let (hits, misses, served) = (
        s.get("hits"),
        s.get("misses"),
        s.get("store_lookups_served"),
    );
    let health = if store {
        let counts = format!(
            "{}/{}/{}",
            s.get("store_errors"),
            s.get("store_rejected"),
            s.get("store_dropped")
        );
        match s.store_status.as_deref() {
            Some(status) if status != "ok" => format!("{status} {counts}"),
            _ => counts,
        }
    } else {
        "-".into()
    };
    format!(
        "{label:>10} {:>10} {:>10} {:>9} {:>10} {:>10} {:>9} {:>18}  {marking}",
        hits.saturating_add(misses),
        hits,
        hit_ratio(hits, served, misses),
        served,
        s.get("callback_hits"),
        s.get("sessions"),
        health,
    )
}

fn report(dir: &Path, found: &Directory) -> String {
    let mut out = format!("{}: {} process(es)\n", dir.display(), found.processes.len());
    out.push_str(&format!(
        "{:>10} {:>10} {:>10} {:>9} {:>10} {:>10} {:>9} {:>18}  {}\n",
        "pid",
        "lookups",
        "hits",
        "hit ratio",
        "store hits",
        "cb hits",
        "sessions",
        "store err/rej/drop",
        "not-resumable marking"
    ));
    let mut total = Stats::default();
    for s in &found.processes {
        out.push_str(&row(
            &s.pid.to_string(),
            s,
            s.has_store(),
            s.marking.as_deref().unwrap_or("-"),
        ));
        out.push('\n');
        for (name, value) in &s.counters {
            let sum = total.counters.entry(name.clone()).or_default();
            *sum = sum.saturating_add(*value);
        }
    }
    let any_store = found.processes.iter().any(Stats::has_store);
    out.push_str(&row("all", &total, any_store, ""));
    out.push('\n');
    for (name, why) in &found.skipped {
        out.push_str(&format!("skipped {name}: {why}\n"));
    }
    if found.skipped_more > 0 {
        out.push_str(&format!("skipped {} more\n", found.skipped_more));
    }
    if found.not_read > 0 {
        out.push_str(&format!(
            "not read: {} more files beyond {MAX_FILES}\n",
            found.not_read
        ));
    }
    out
}

fn main() -> ExitCode {
    let args: Vec<_> = std::env::args_os().skip(1).collect();
    let [dir] = args.as_slice() else {
        eprintln!("usage: sesscache-stats DIR   (the SESSCACHE_STATS directory; see sesscache(7))");
        return ExitCode::from(2);
    };
    let dir = Path::new(dir);
    let found = match read_directory(dir) {
        Ok(found) => found,
        Err(e) => {
            eprintln!("sesscache-stats: {}: {e}", dir.display());
            return ExitCode::from(2);
        }
    };
    print!("{}", report(dir, &found));
    if found.processes.is_empty() {
        eprintln!(
            "sesscache-stats: no readable stats file in {}",
            dir.display()
        );
        return ExitCode::from(1);
    }
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stats_file() {
        let s = parse(
            "pid=7\nhits=3\nmisses=1\nnot_resumable_marking=store_at_324\nstore_errors=2\n",
            7,
        )
        .unwrap();
        assert_eq!(
            (s.pid, s.get("hits"), s.get("misses"), s.get("store_errors")),
            (7, 3, 1, 2)
        );
        assert_eq!(s.marking.as_deref(), Some("store_at_324"));
        assert!(s.has_store());
        assert!(
            !parse("pid=7\nhits=3\nstore_lookups_served=0\n", 7)
                .unwrap()
                .has_store()
        );
    }

    #[test]
    fn garbage_is_refused() {
        for (text, why) in [
            ("pid=8\nhits=1\n", "names pid 8"),
            ("hits=1\n", "no pid line"),
            ("pid=7\nhits=-1\n", "line 2: hits is not a count"),
            (
                "pid=7\nhits=99999999999999999999999\n",
                "line 2: hits is not a count",
            ),
            ("pid=7\nhits=1\nhits=2\n", "hits twice"),
            ("pid=7\nHITS=1\n", "line 2: bad name"),
            ("pid=7\nhits\n", "line 2 is not name=value"),
            (
                "pid=7\nnot_resumable_marking=a b\n",
                "bad not_resumable_marking",
            ),
        ] {
            assert_eq!(parse(text, 7), Err(why.to_owned()), "{text:?}");
        }
        let long: String = (0..MAX_LINES).map(|i| format!("x{i}=1\n")).collect();
        let long = format!("pid=7\n{long}");
        assert_eq!(parse(&long, 7), Err(format!("more than {MAX_LINES} lines")));
    }

    #[test]
    fn file_names() {
        assert_eq!(pid_of("sesscache.42.stats"), Some(42));
        for name in [
            "sesscache..stats",
            "sesscache.4x.stats",
            ".sesscache.42.stats.tmp",
            "sesscache.42.prom",
            "sesscache.+4.stats",
            "sesscache.99999999999.stats",
        ] {
            assert_eq!(pid_of(name), None, "{name}");
        }
    }

    #[test]
    fn ratios() {
        assert_eq!(hit_ratio(0, 0, 0), "-");
        assert_eq!(hit_ratio(3, 0, 1), "75.0 %");
        // A store hit follows a miss: 1 hit and 1 store hit of 3 lookups.
        assert_eq!(hit_ratio(1, 1, 2), "66.7 %");
        assert_eq!(hit_ratio(u64::MAX, u64::MAX, u64::MAX), "100.0 %");
    }

    #[test]
    fn totals_add_up() {
        let found = Directory {
            processes: vec![
                parse(
                    "pid=1\nhits=3\nmisses=1\nsessions=2\nnot_resumable_marking=libssl\n",
                    1,
                )
                .unwrap(),
                parse(
                    "pid=2\nhits=5\nmisses=3\nsessions=4\nnot_resumable_marking=learning\n",
                    2,
                )
                .unwrap(),
            ],
            ..Directory::default()
        };
        let text = report(Path::new("d"), &found);
        let all = text
            .lines()
            .find(|l| l.trim_start().starts_with("all"))
            .unwrap();
        let fields: Vec<_> = all.split_whitespace().collect();
        assert_eq!(fields[..5], ["all", "12", "8", "66.7", "%"]);
        assert!(text.contains(" libssl\n") && text.contains(" learning\n"));
    }
}
