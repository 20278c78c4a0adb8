#[derive(livesync::Row)]
struct Todo {
    id: String,
    when: std::time::Instant,
}

fn main() {}
