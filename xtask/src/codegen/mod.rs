//! `cargo xtask codegen [--check] [--specs DIR]`: Kafka's JSON message specs → Rust in
//! `src/protocol/generated/`, formatted with rustfmt. The output is committed; `--check`
//! regenerates in memory and fails if the committed files differ.
// A dev tool: it reads specs and writes generated code.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

mod dispatch;
mod emit;
mod spec;
mod versions;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

pub struct Options {
    pub check: bool,
    pub specs: Option<PathBuf>,
}

/// Where the generated module lives, relative to the workspace root.
const OUTPUT_DIR: &str = "src/protocol/generated";

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives inside the workspace")
        .to_path_buf()
}

/// `ProduceRequest` → `produce_request` (the file and module name).
pub fn file_stem(name: &str) -> String {
    spec::snake_case(name)
}

pub fn run(opts: Options) -> Result<(), String> {
    let root = workspace_root();
    let specs = opts
        .specs
        .unwrap_or_else(|| root.join("../shared/kafka-message-specs"));
    if !specs.is_dir() {
        if opts.check {
            println!(
                "codegen --check skipped: specs directory {} not found",
                specs.display()
            );
            return Ok(());
        }
        return Err(format!("specs directory {} not found", specs.display()));
    }

    let files = generate(&specs)?;
    let formatted = rustfmt(&root, &files)?;
    let out_dir = root.join(OUTPUT_DIR);
    let existing = read_tree(&out_dir)?;

    if opts.check {
        let mut stale: Vec<&String> = Vec::new();
        for (path, text) in &formatted {
            if existing.get(path) != Some(text) {
                stale.push(path);
            }
        }
        let extra: Vec<&String> = existing
            .keys()
            .filter(|p| !formatted.contains_key(*p))
            .collect();
        if stale.is_empty() && extra.is_empty() {
            println!("codegen --check: {} files up to date", formatted.len());
            return Ok(());
        }
        for p in &stale {
            eprintln!("out of date: {OUTPUT_DIR}/{p}");
        }
        for p in &extra {
            eprintln!("not generated from any spec: {OUTPUT_DIR}/{p}");
        }
        return Err("generated code differs from the specs: run `cargo xtask codegen`".into());
    }

    let mut written = 0;
    for (path, text) in &formatted {
        if existing.get(path) != Some(text) {
            let dest = out_dir.join(path);
            if let Some(parent) = dest.parent() {
                fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
            }
            fs::write(&dest, text).map_err(|e| format!("{}: {e}", dest.display()))?;
            written += 1;
        }
    }
    for path in existing.keys().filter(|p| !formatted.contains_key(*p)) {
        let dest = out_dir.join(path);
        fs::remove_file(&dest).map_err(|e| format!("{}: {e}", dest.display()))?;
        println!("removed {OUTPUT_DIR}/{path}");
    }
    println!(
        "codegen: {} files in {OUTPUT_DIR}, {written} changed",
        formatted.len()
    );
    Ok(())
}

/// Every spec → unformatted Rust, keyed by path relative to the output directory.
fn generate(specs: &Path) -> Result<BTreeMap<String, String>, String> {
    let mut files = BTreeMap::new();
    let top = read_specs(specs, "")?;
    let mut submodules = Vec::new();
    let mut dirs: Vec<PathBuf> = list(specs)?.into_iter().filter(|p| p.is_dir()).collect();
    dirs.sort();
    for dir in dirs {
        let dir_name = dir
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or("bad directory name")?
            .to_string();
        let module = dir_name.replace('-', "_");
        let msgs = read_specs(&dir, &format!("{dir_name}/"))?;
        if msgs.is_empty() {
            continue;
        }
        for m in &msgs {
            files.insert(
                format!("{module}/{}.rs", file_stem(&m.name)),
                emit::emit_message(m)?,
            );
        }
        files.insert(format!("{module}/mod.rs"), dispatch::emit_submodule(&msgs));
        submodules.push((module, msgs));
    }
    for m in &top {
        let path = format!("{}.rs", file_stem(&m.name));
        if files.insert(path.clone(), emit::emit_message(m)?).is_some() {
            return Err(format!("two specs generate {path}"));
        }
    }
    files.insert("mod.rs".into(), dispatch::emit_root(&top, &submodules)?);
    Ok(files)
}

fn read_specs(dir: &Path, prefix: &str) -> Result<Vec<spec::Message>, String> {
    let mut paths: Vec<PathBuf> = list(dir)?
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    paths.sort();
    let mut msgs = Vec::new();
    for path in paths {
        let text = fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or("bad file name")?;
        msgs.push(spec::parse_message(&text, &format!("{prefix}{name}"))?);
    }
    Ok(msgs)
}

fn list(dir: &Path) -> Result<Vec<PathBuf>, String> {
    fs::read_dir(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .map(|e| e.map(|e| e.path()).map_err(|e| e.to_string()))
        .collect()
}

/// The `.rs` files under `dir`, keyed by relative path.
fn read_tree(dir: &Path) -> Result<BTreeMap<String, String>, String> {
    let mut out = BTreeMap::new();
    if !dir.is_dir() {
        return Ok(out);
    }
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for p in list(&d)? {
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|e| e == "rs") {
                let rel = p
                    .strip_prefix(dir)
                    .map_err(|e| e.to_string())?
                    .to_string_lossy()
                    .replace('\\', "/");
                let text = fs::read_to_string(&p).map_err(|e| format!("{}: {e}", p.display()))?;
                out.insert(rel, text);
            }
        }
    }
    Ok(out)
}

/// Formats the files with one rustfmt run, in a scratch directory under `target/` so rustfmt
/// picks up the workspace's own configuration, exactly as `cargo fmt` would.
fn rustfmt(
    root: &Path,
    files: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, String>, String> {
    let scratch = root.join("target/xtask-codegen");
    if scratch.exists() {
        fs::remove_dir_all(&scratch).map_err(|e| format!("{}: {e}", scratch.display()))?;
    }
    for (path, text) in files {
        let dest = scratch.join(path);
        if let Some(parent) = dest.parent() {
            fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
        }
        fs::write(&dest, text).map_err(|e| format!("{}: {e}", dest.display()))?;
    }
    let status = Command::new("rustfmt")
        .arg("--edition")
        .arg("2021")
        .arg(scratch.join("mod.rs"))
        .status()
        .map_err(|e| format!("running rustfmt: {e}"))?;
    if !status.success() {
        return Err(format!(
            "rustfmt failed on the generated code (left in {})",
            scratch.display()
        ));
    }
    let formatted = read_tree(&scratch)?;
    if formatted.len() != files.len() {
        return Err("rustfmt output is missing files".into());
    }
    fs::remove_dir_all(&scratch).map_err(|e| format!("{}: {e}", scratch.display()))?;
    Ok(formatted)
}
