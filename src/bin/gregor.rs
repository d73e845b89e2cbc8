fn main() {
    println!("gregor: broker not yet wired");
}
