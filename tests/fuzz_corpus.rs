//! Replays the fuzz corpora on stable: every file under `fuzz/corpus/<target>/` and
//! `fuzz/regressions/<target>/` goes through its target function in `gregor::fuzzing`, as
//! `cargo fuzz run` would, so CI catches a decoder change that breaks a known input.
// Tests read and write their corpus files on the real disk.
#![allow(clippy::disallowed_methods)]

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use gregor::fuzzing::{seeds, TARGETS};

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

fn files_in(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .map(|e| e.expect("readable directory entry").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

/// Runs `f` over `input`; a panic becomes an error naming the input.
fn run(f: fn(&[u8]), what: &str, input: &[u8]) -> Result<(), String> {
    catch_unwind(AssertUnwindSafe(|| f(input))).map_err(|e| {
        let msg = e
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default();
        format!("{what}: {msg}")
    })
}

#[test]
fn every_corpus_and_regression_file_passes_its_target() {
    let mut failures = Vec::new();
    for (name, f) in TARGETS {
        let corpus = files_in(&fuzz_dir().join("corpus").join(name));
        assert!(!corpus.is_empty(), "fuzz/corpus/{name} has no seeds");
        let regressions = files_in(&fuzz_dir().join("regressions").join(name));
        for path in corpus.iter().chain(&regressions) {
            let data = std::fs::read(path).expect("readable corpus file");
            if let Err(e) = run(*f, &path.display().to_string(), &data) {
                failures.push(e);
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The librdkafka request frames the golden tests capture are request_frame inputs as they are.
#[test]
fn golden_request_frames_pass_request_frame() {
    let golden = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let f = gregor::fuzzing::target("request_frame").expect("request_frame target");
    let mut failures = Vec::new();
    for path in files_in(&golden) {
        let data = std::fs::read(&path).expect("readable golden frame");
        if let Err(e) = run(f, &path.display().to_string(), &data) {
            failures.push(e);
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn every_seed_passes_its_target() {
    let mut failures = Vec::new();
    for s in seeds() {
        let f = gregor::fuzzing::target(s.target).expect("seed for a known target");
        if let Err(e) = run(f, &format!("{}/{}", s.target, s.name), &s.data) {
            failures.push(e);
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Every target has a fuzz_targets file, and every fuzz_targets file a target.
#[test]
fn fuzz_targets_match_the_library() {
    let mut files: Vec<String> = files_in(&fuzz_dir().join("fuzz_targets"))
        .iter()
        .filter_map(|p| Some(p.file_stem()?.to_str()?.to_string()))
        .collect();
    files.sort();
    let mut names: Vec<String> = TARGETS.iter().map(|(n, _)| n.to_string()).collect();
    names.sort();
    assert_eq!(files, names);
}

/// Writes the seeds into `fuzz/corpus/<target>/seed_<name>`. Run by hand after changing them:
/// `cargo test --test fuzz_corpus -- --ignored write_seed_corpus`.
#[test]
#[ignore]
fn write_seed_corpus() {
    for s in seeds() {
        let dir = fuzz_dir().join("corpus").join(s.target);
        std::fs::create_dir_all(&dir).expect("create corpus dir");
        std::fs::write(dir.join(format!("seed_{}", s.name)), &s.data).expect("write seed");
    }
}
