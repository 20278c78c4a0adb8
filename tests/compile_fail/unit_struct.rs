#[derive(livesync::Row)]
struct Nothing;

fn main() {}
