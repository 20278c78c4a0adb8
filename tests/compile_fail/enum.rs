#[derive(livesync::Row)]
enum Status {
    Open,
    Done,
}

fn main() {}
