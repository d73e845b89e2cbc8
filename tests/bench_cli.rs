//! Smoke test of `gregor bench produce|consume`: a tiny run of the real binary against an
//! in-process broker, checking the figures it prints add up. Not a benchmark: nothing is timed.

mod common;

use common::TestBroker;
use std::process::Command;

/// Runs `gregor bench <args>` and returns its stdout; fails the test on a non-zero exit.
fn bench(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_gregor"))
        .arg("bench")
        .args(args)
        .arg("--quiet")
        .env("RUST_LOG", "warn")
        .output()
        .expect("run gregor bench");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "gregor bench {args:?} failed: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// The figures of the summary line: "<verb> N records, B bytes in S s: R records/s, M MB/s".
fn figures(stdout: &str, verb: &str) -> (u64, u64, f64, f64) {
    let line = stdout
        .lines()
        .find(|l| l.starts_with(verb))
        .unwrap_or_else(|| panic!("no '{verb}' line in:\n{stdout}"));
    let words: Vec<&str> = line.split_whitespace().collect();
    let num = |i: usize| words[i].trim_end_matches([',', ':']).to_owned();
    // produced 300 records, 76800 bytes in 0.012 s: 25000 records/s, 6.10 MB/s ...
    assert_eq!(
        (words[2], words[4], words[7]),
        ("records,", "bytes", "s:"),
        "{line}"
    );
    (
        num(1).parse().unwrap(),
        num(3).parse().unwrap(),
        num(8).parse().unwrap(),
        num(10).parse().unwrap(),
    )
}

fn latency_requests(stdout: &str) -> u64 {
    let line = stdout
        .lines()
        .find(|l| l.starts_with("latency over"))
        .unwrap_or_else(|| panic!("no latency line in:\n{stdout}"));
    line.split_whitespace().nth(2).unwrap().parse().unwrap()
}

#[test]
fn produce_then_consume_counts_every_record() {
    let broker = TestBroker::start("bench-cli");
    let bootstrap = broker.bootstrap();
    let common = [
        "--bootstrap",
        &bootstrap,
        "--topic",
        "smoke",
        "--partitions",
        "3",
    ];

    // 1000 records of 200 bytes, ~10 per batch: about 100 requests over 2 connections.
    let mut args = vec!["produce"];
    args.extend(common);
    args.extend([
        "--records",
        "1000",
        "--record-size",
        "200",
        "--batch-bytes",
        "2200",
        "--acks",
        "all",
        "--connections",
        "2",
        "--in-flight",
        "3",
    ]);
    let out = bench(&args);
    let (records, bytes, per_sec, mb_per_sec) = figures(&out, "produced");
    assert_eq!((records, bytes), (1000, 200_000), "{out}");
    assert!(per_sec > 0.0 && mb_per_sec > 0.0, "{out}");
    let requests = latency_requests(&out);
    assert!((100..=110).contains(&requests), "{out}");

    // Another 500, compressed and with acks=1, into the same topic.
    let mut args = vec!["produce"];
    args.extend(common);
    args.extend([
        "--records",
        "500",
        "--record-size",
        "200",
        "--acks",
        "1",
        "--compression",
        "zstd",
    ]);
    let (records, _, _, _) = figures(&bench(&args), "produced");
    assert_eq!(records, 500);

    // Consume reads everything produced, exactly once.
    let mut args = vec!["consume"];
    args.extend(common);
    args.extend(["--connections", "2", "--partition-fetch-bytes", "4096"]);
    let out = bench(&args);
    let (records, bytes, per_sec, _) = figures(&out, "consumed");
    assert_eq!((records, bytes), (1500, 300_000), "{out}");
    assert!(per_sec > 0.0, "{out}");
    assert!(latency_requests(&out) >= 3, "{out}");

    // With --records it stops once that many are read.
    let mut args = vec!["consume"];
    args.extend(common);
    args.extend(["--records", "10"]);
    let (records, _, _, _) = figures(&bench(&args), "consumed");
    assert!((10..=1500).contains(&records), "{records}");
}

#[test]
fn bad_options_fail_with_one_line() {
    let out = Command::new(env!("CARGO_BIN_EXE_gregor"))
        .args(["bench", "produce", "--acks", "2"])
        .output()
        .expect("run gregor bench");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("acks must be"));
}
