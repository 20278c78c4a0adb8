#[derive(livesync::Row)]
struct Pair(String, i64);

fn main() {}
