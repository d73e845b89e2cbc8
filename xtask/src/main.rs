fn main() {
    eprintln!("usage: cargo xtask codegen [--check]");
}
