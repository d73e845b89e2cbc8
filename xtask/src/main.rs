mod sim;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("sim") => std::process::exit(sim::run(&args[1..])),
        _ => eprintln!("usage: cargo xtask codegen [--check] | cargo xtask sim <run|replay|sweep|regressions> ..."),
    }
}
