//! The built library exports exactly the libssl functions of its list
//! (`sesscache::INTERPOSED`) and its own `sesscache_*` functions, the
//! header declares the same, the man page names them, and the library
//! names no libssl or libcrypto
//! among its NEEDED entries (it finds them at run time, so that a process
//! on another soname never gets a second libssl).
//!
//! Reads the release build beside this test binary
//! (`target/release/libsesscache.so`): `make test-rust` builds it first.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;

fn library() -> PathBuf {
    // target/release/deps/exports-<hash> -> target/release
    let exe = std::env::current_exe().expect("test binary path");
    let dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>/deps");
    let lib = dir.join("libsesscache.so");
    assert!(
        lib.is_file(),
        "{} missing: run `cargo build --release` first",
        lib.display()
    );
    lib
}

fn run(cmd: &str, args: &[&str], lib: &PathBuf) -> String {
    let out = Command::new(cmd)
        .args(args)
        .arg(lib)
        .output()
        .unwrap_or_else(|e| panic!("{cmd}: {e}"));
    assert!(out.status.success(), "{cmd} failed: {out:?}");
    String::from_utf8(out.stdout).expect("utf-8 output")
}

/// `sesscache_*` functions declared in include/sesscache.h.
fn own_functions_in_header() -> BTreeSet<String> {
    declared_in_header()
        .into_iter()
        .filter(|name| name.starts_with("sesscache_"))
        .collect()
}

/// Every function name declared in include/sesscache.h.
fn declared_in_header() -> BTreeSet<String> {
    let header = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("include/sesscache.h"),
    )
    .expect("include/sesscache.h");
    header
        .lines()
        .filter(|l| !l.starts_with("typedef") && !l.trim_start().starts_with("//"))
        .filter_map(|l| {
            let open = l.find('(')?;
            let name: String = l[..open]
                .chars()
                .rev()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            (!name.is_empty()).then_some(name)
        })
        .collect()
}

#[test]
fn dynamic_symbols_are_the_list() {
    let lib = library();
    let text = run("nm", &["-D", "--defined-only"], &lib);
    let exported: BTreeSet<String> = text
        .lines()
        .filter_map(|l| l.split_whitespace().last())
        .map(str::to_string)
        .collect();
    let mut expected: BTreeSet<String> = sesscache::INTERPOSED
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(
        expected.len(),
        sesscache::INTERPOSED.len(),
        "the list names a function twice"
    );
    expected.extend(own_functions_in_header());
    let missing: Vec<_> = expected.difference(&exported).collect();
    let extra: Vec<_> = exported.difference(&expected).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "exports differ from the list: missing {missing:?}, not in the list {extra:?}"
    );
    // Unversioned, so that a reference of any release line's version
    // (OPENSSL_3.0.0, OPENSSL_4.0.0) binds to them.
    let versioned = run(
        "nm",
        &["-D", "--defined-only", "--with-symbol-versions"],
        &lib,
    );
    assert!(
        !versioned.contains('@'),
        "exports carry symbol versions:\n{versioned}"
    );
}

#[test]
fn header_declares_the_list() {
    let declared = declared_in_header();
    let libssl_declared: BTreeSet<&str> = declared
        .iter()
        .map(String::as_str)
        .filter(|n| !n.starts_with("sesscache_"))
        .collect();
    let listed: BTreeSet<&str> = sesscache::INTERPOSED.iter().copied().collect();
    assert_eq!(libssl_declared, listed);
}

#[test]
fn man_page_names_the_list() {
    let page = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("c-tests/install/sesscache.7"),
    )
    .expect("c-tests/install/sesscache.7");
    // Each export is named on a line of its own: `.BR NAME ,` or `.B NAME`.
    let named: BTreeSet<&str> = page
        .lines()
        .filter_map(|l| l.strip_prefix(".BR ").or_else(|| l.strip_prefix(".B ")))
        .filter_map(|rest| rest.split_whitespace().next())
        .collect();
    let missing: Vec<&str> = sesscache::INTERPOSED
        .iter()
        .copied()
        .filter(|name| !named.contains(name))
        .collect();
    assert!(missing.is_empty(), "sesscache.7 does not name {missing:?}");
}

#[test]
fn no_libssl_among_needed() {
    let dynamic = run("readelf", &["-d"], &library());
    let needed: Vec<&str> = dynamic.lines().filter(|l| l.contains("(NEEDED)")).collect();
    assert!(!needed.is_empty(), "no NEEDED entries read:\n{dynamic}");
    for line in needed {
        assert!(
            !line.contains("libssl") && !line.contains("libcrypto"),
            "the library is linked against libssl: {line}"
        );
    }
}

/// The (major, minor) of a symbol version such as `OPENSSL_3.4.0`.
fn version_line(version: &str) -> Option<(u64, u64)> {
    let mut parts = version.strip_prefix("OPENSSL_")?.split('.');
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

/// Each listed function's first release line is the symbol version the
/// machine's libssl gives it, and a function of a later line than that
/// libssl's newest symbol version is absent there.
#[test]
fn each_function_is_listed_with_the_line_that_added_it() {
    let libssl = PathBuf::from("/usr/lib/x86_64-linux-gnu/libssl.so.3");
    if !libssl.is_file() {
        eprintln!("skipped: no {}", libssl.display());
        return;
    }
    let text = run(
        "nm",
        &["-D", "--defined-only", "--with-symbol-versions"],
        &libssl,
    );
    let defined: std::collections::BTreeMap<&str, (u64, u64)> = text
        .lines()
        .filter_map(|l| l.split_whitespace().last()?.split_once("@@"))
        .filter_map(|(name, version)| Some((name, version_line(version)?)))
        .collect();
    let newest = defined.values().max().copied().expect("versioned symbols");
    assert_eq!(
        sesscache::INTERPOSED_SINCE.len(),
        sesscache::INTERPOSED.len()
    );
    for &(name, since) in sesscache::INTERPOSED_SINCE {
        match defined.get(name) {
            Some(&version) => assert_eq!(version, since, "{name}"),
            None => assert!(since > newest, "{name} missing from {}", libssl.display()),
        }
    }
}
