//! Developer tasks for gregor: `cargo xtask <task>`.

mod codegen;
mod sim;
mod test;

use std::path::PathBuf;
use std::process::ExitCode;

const USAGE: &str = "usage: cargo xtask codegen [--check] [--specs DIR] | test [--no-sim] | sim <run|replay|sweep|regressions> ...";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("codegen") => parse_codegen(&args[1..]).and_then(codegen::run),
        Some("test") => test::run(&args[1..]),
        Some("sim") => std::process::exit(sim::run(&args[1..])),
        _ => Err(USAGE.to_string()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::FAILURE
        }
    }
}

fn parse_codegen(args: &[String]) -> Result<codegen::Options, String> {
    let mut opts = codegen::Options {
        check: false,
        specs: None,
    };
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--check" => opts.check = true,
            "--specs" => {
                let dir = it.next().ok_or(USAGE)?;
                opts.specs = Some(PathBuf::from(dir));
            }
            _ => return Err(USAGE.to_string()),
        }
    }
    Ok(opts)
}
