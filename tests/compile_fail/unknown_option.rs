#[derive(livesync::Row)]
struct Todo {
    id: String,
    #[row(renamed = "x")]
    title: String,
}

fn main() {}
